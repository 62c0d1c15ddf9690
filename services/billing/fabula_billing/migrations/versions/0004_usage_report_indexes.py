"""Indexes for usage logs (a user's ledger by (occurred_at, id)) and the usage
breakdown (a user's ledger by recorded_at).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SCHEMA = "billing"


def upgrade() -> None:
    # The id makes the logs' page key unique: the new index covers the old one.
    op.create_index(
        "ix_usage_ledger_user_id_occurred_at_id",
        "usage_ledger",
        ["user_id", "occurred_at", "id"],
        schema=SCHEMA,
    )
    op.drop_index("ix_usage_ledger_user_id_occurred_at", table_name="usage_ledger", schema=SCHEMA)
    op.create_index(
        "ix_usage_ledger_user_id_recorded_at",
        "usage_ledger",
        ["user_id", "recorded_at"],
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_index("ix_usage_ledger_user_id_recorded_at", table_name="usage_ledger", schema=SCHEMA)
    op.create_index(
        "ix_usage_ledger_user_id_occurred_at",
        "usage_ledger",
        ["user_id", "occurred_at"],
        schema=SCHEMA,
    )
    op.drop_index(
        "ix_usage_ledger_user_id_occurred_at_id", table_name="usage_ledger", schema=SCHEMA
    )
