"""Leaving: tombstones of deleted users; their ledger entries are kept anonymised.

Revision ID: 0004_leaving
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_leaving"
down_revision = "0006"
branch_labels = None
depends_on = None

SCHEMA = "billing"


def upgrade() -> None:
    op.create_table(
        "deleted_users",
        sa.Column("user_id_sha256", sa.String(64), nullable=False),
        sa.Column(
            "deleted_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("user_id_sha256", name="pk_deleted_users"),
        schema=SCHEMA,
    )
    op.alter_column("usage_ledger", "user_id", nullable=True, schema=SCHEMA)


def downgrade() -> None:
    # Anonymised entries have no user to give back.
    op.execute(f"DELETE FROM {SCHEMA}.usage_ledger WHERE user_id IS NULL")
    op.alter_column("usage_ledger", "user_id", nullable=False, schema=SCHEMA)
    op.drop_table("deleted_users", schema=SCHEMA)
