"""The ledger entries of a generation, found by index: settling a batch
marks them counted or not in one statement, which without it read the
whole ledger.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SCHEMA = "billing"


def upgrade() -> None:
    op.create_index(
        "ix_usage_ledger_generation_id_user_id",
        "usage_ledger",
        ["generation_id", "user_id"],
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_index("ix_usage_ledger_generation_id_user_id", table_name="usage_ledger", schema=SCHEMA)
