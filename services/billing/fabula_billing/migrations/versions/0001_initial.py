"""Accounts, reservations, the usage ledger and the consumers' inbox.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "billing"


def _usd() -> sa.Numeric:
    return sa.Numeric(18, 9)


def _timestamp(name: str, *, nullable: bool = False, default_now: bool = False) -> sa.Column:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=sa.func.now() if default_now else None,
    )


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("plan", sa.String(32), nullable=False),
        _timestamp("period_start"),
        _timestamp("period_end"),
        sa.Column("generations_used", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "generations_reserved", sa.BigInteger(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("cost_used_usd", _usd(), server_default=sa.text("0"), nullable=False),
        sa.Column("cost_reserved_usd", _usd(), server_default=sa.text("0"), nullable=False),
        _timestamp("created_at", default_now=True),
        _timestamp("updated_at", default_now=True),
        sa.PrimaryKeyConstraint("user_id", name="pk_accounts"),
        sa.CheckConstraint(
            "generations_used >= 0", name="ck_accounts_generations_used_non_negative"
        ),
        sa.CheckConstraint(
            "generations_reserved >= 0", name="ck_accounts_generations_reserved_non_negative"
        ),
        sa.CheckConstraint("cost_used_usd >= 0", name="ck_accounts_cost_used_non_negative"),
        sa.CheckConstraint("cost_reserved_usd >= 0", name="ck_accounts_cost_reserved_non_negative"),
        sa.CheckConstraint("period_start < period_end", name="ck_accounts_period_ordered"),
        schema=SCHEMA,
    )

    op.create_table(
        "reservations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("estimated_cost_usd", _usd(), nullable=False),
        sa.Column("actual_cost_usd", _usd(), nullable=True),
        sa.Column("generation_id", sa.String(), nullable=True),
        _timestamp("created_at", default_now=True),
        _timestamp("expires_at"),
        _timestamp("settled_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_reservations"),
        sa.CheckConstraint(
            "status IN ('reserved', 'settled', 'released', 'expired')",
            name="ck_reservations_status_known",
        ),
        sa.CheckConstraint(
            "estimated_cost_usd >= 0", name="ck_reservations_estimated_cost_non_negative"
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_reservations_user_id_created_at",
        "reservations",
        ["user_id", "created_at"],
        schema=SCHEMA,
    )
    op.create_index(
        "ix_reservations_expires_at_reserved",
        "reservations",
        ["expires_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'reserved'"),
    )

    op.create_table(
        "usage_ledger",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("reservation_id", sa.Uuid(), nullable=True),
        sa.Column("generation_id", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("provider", sa.String(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("usage_estimated", sa.Boolean(), nullable=False),
        sa.Column("cost_usd", _usd(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("counted", sa.Boolean(), nullable=False),
        _timestamp("occurred_at"),
        _timestamp("recorded_at", default_now=True),
        sa.PrimaryKeyConstraint("id", name="pk_usage_ledger"),
        sa.UniqueConstraint("event_id", name="uq_usage_ledger_event_id"),
        sa.CheckConstraint("cost_usd >= 0", name="ck_usage_ledger_cost_non_negative"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_usage_ledger_user_id_occurred_at",
        "usage_ledger",
        ["user_id", "occurred_at"],
        schema=SCHEMA,
    )

    op.create_table(
        "processed_events",
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        _timestamp("processed_at", default_now=True),
        sa.PrimaryKeyConstraint("event_id", name="pk_processed_events"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("processed_events", schema=SCHEMA)
    op.drop_index("ix_usage_ledger_user_id_occurred_at", table_name="usage_ledger", schema=SCHEMA)
    op.drop_table("usage_ledger", schema=SCHEMA)
    op.drop_index("ix_reservations_expires_at_reserved", table_name="reservations", schema=SCHEMA)
    op.drop_index("ix_reservations_user_id_created_at", table_name="reservations", schema=SCHEMA)
    op.drop_table("reservations", schema=SCHEMA)
    op.drop_table("accounts", schema=SCHEMA)
