"""Outbox retries: a row that fails is retried on its own schedule and parked
after too many attempts (fabula_common.messaging.outbox).

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "generation"


def upgrade() -> None:
    # Rows waiting now are due at once.
    op.add_column(
        "outbox",
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        schema=SCHEMA,
    )
    op.add_column("outbox", sa.Column("last_error", sa.Text(), nullable=True), schema=SCHEMA)
    op.add_column(
        "outbox", sa.Column("parked_at", sa.DateTime(timezone=True), nullable=True), schema=SCHEMA
    )
    # The relay now asks for due rows neither published nor parked.
    op.drop_index("ix_outbox_pending", table_name="outbox", schema=SCHEMA)
    op.create_index(
        "ix_outbox_pending",
        "outbox",
        ["next_attempt_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("published_at IS NULL AND parked_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_pending", table_name="outbox", schema=SCHEMA)
    op.create_index(
        "ix_outbox_pending",
        "outbox",
        ["created_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.drop_column("outbox", "parked_at", schema=SCHEMA)
    op.drop_column("outbox", "last_error", schema=SCHEMA)
    op.drop_column("outbox", "next_attempt_at", schema=SCHEMA)
