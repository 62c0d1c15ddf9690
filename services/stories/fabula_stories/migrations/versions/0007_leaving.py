"""Leaving: the inbox of the UserDeleted consumer and the tombstones of deleted users.

Revision ID: 0007_leaving
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_leaving"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "stories"


def upgrade() -> None:
    op.create_table(
        "processed_events",
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column(
            "processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("event_id", name="pk_processed_events"),
        schema=SCHEMA,
    )
    op.create_table(
        "deleted_users",
        sa.Column("user_id_sha256", sa.String(64), nullable=False),
        sa.Column(
            "deleted_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("user_id_sha256", name="pk_deleted_users"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("deleted_users", schema=SCHEMA)
    op.drop_table("processed_events", schema=SCHEMA)
