"""Schema changes of the shared messaging tables, replayed by the migrations of
every service that has them. Each function is one released change: never edit
one (a deployed database already ran it); add a new one instead."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


def add_outbox_retries(schema: str) -> None:
    """Outbox retries: a row that fails is retried on its own schedule and
    parked after too many attempts (fabula_common.messaging.outbox)."""
    # Rows waiting now are due at once.
    op.add_column(
        "outbox",
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        schema=schema,
    )
    op.add_column("outbox", sa.Column("last_error", sa.Text(), nullable=True), schema=schema)
    op.add_column(
        "outbox", sa.Column("parked_at", sa.DateTime(timezone=True), nullable=True), schema=schema
    )
    # The relay asks for due rows neither published nor parked.
    op.drop_index("ix_outbox_pending", table_name="outbox", schema=schema)
    op.create_index(
        "ix_outbox_pending",
        "outbox",
        ["next_attempt_at"],
        schema=schema,
        postgresql_where=sa.text("published_at IS NULL AND parked_at IS NULL"),
    )


def remove_outbox_retries(schema: str) -> None:
    op.drop_index("ix_outbox_pending", table_name="outbox", schema=schema)
    op.create_index(
        "ix_outbox_pending",
        "outbox",
        ["created_at"],
        schema=schema,
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.drop_column("outbox", "parked_at", schema=schema)
    op.drop_column("outbox", "last_error", schema=schema)
    op.drop_column("outbox", "next_attempt_at", schema=schema)
