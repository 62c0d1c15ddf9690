"""Cost-only reservations: a reservation may hold its estimated cost and no generation.

Revision ID: 0008_cost_only
Revises: 0004_leaving
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_cost_only"
down_revision = "0004_leaving"
branch_labels = None
depends_on = None

SCHEMA = "billing"


def upgrade() -> None:
    # Every existing reservation holds a generation: false for all of them.
    op.add_column(
        "reservations",
        sa.Column("cost_only", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        schema=SCHEMA,
    )


def downgrade() -> None:
    # Before this revision every reservation holding quota holds a generation:
    # a cost-only one still outstanding would give back a generation it never
    # held. Its cost hold is given back here instead, and it is released (its
    # usage event, when it comes, is still billed).
    op.execute(
        f"UPDATE {SCHEMA}.accounts AS account "
        "SET cost_reserved_usd = account.cost_reserved_usd - held.cost "
        "FROM (SELECT user_id, sum(estimated_cost_usd) AS cost "
        f"      FROM {SCHEMA}.reservations "
        "      WHERE cost_only AND status = 'reserved' AND cost_settled_at IS NULL "
        "      GROUP BY user_id) AS held "
        "WHERE account.user_id = held.user_id"
    )
    op.execute(
        f"UPDATE {SCHEMA}.reservations SET status = 'released', settled_at = now(), "
        "cost_settled_at = coalesce(cost_settled_at, now()), "
        "count_settled_at = coalesce(count_settled_at, now()), counted = coalesce(counted, false) "
        "WHERE cost_only AND status = 'reserved'"
    )
    op.drop_column("reservations", "cost_only", schema=SCHEMA)
