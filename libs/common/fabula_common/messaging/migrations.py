"""Schema changes of the shared messaging tables, replayed by the migrations of
every service that has them. Each function is one released change: never edit
one (a deployed database already ran it); add a new one instead."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql


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


def create_outbox(schema: str) -> None:
    """The outbox as it is now (outbox_table), for a service that starts
    publishing events after the changes above were released."""
    op.create_table(
        "outbox",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("event_type", sa.String(255), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("headers", postgresql.JSONB(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("parked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        schema=schema,
    )
    op.create_index(
        "ix_outbox_pending",
        "outbox",
        ["next_attempt_at"],
        schema=schema,
        postgresql_where=sa.text("published_at IS NULL AND parked_at IS NULL"),
    )


def drop_outbox(schema: str) -> None:
    op.drop_index("ix_outbox_pending", table_name="outbox", schema=schema)
    op.drop_table("outbox", schema=schema)
