"""Reservations settle their cost and their count separately.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCHEMA = "billing"


def upgrade() -> None:
    op.add_column(
        "reservations", sa.Column("cost_settled_at", sa.DateTime(timezone=True)), schema=SCHEMA
    )
    op.add_column(
        "reservations", sa.Column("count_settled_at", sa.DateTime(timezone=True)), schema=SCHEMA
    )
    op.add_column("reservations", sa.Column("counted", sa.Boolean()), schema=SCHEMA)
    # Settled ones had both applied at once, counted; released ones hold nothing
    # and counted nothing. Reserved and expired ones wait for their event.
    op.execute(
        f"UPDATE {SCHEMA}.reservations SET cost_settled_at = coalesce(settled_at, now()), "
        "count_settled_at = coalesce(settled_at, now()), counted = (status = 'settled') "
        "WHERE status IN ('settled', 'released')"
    )


def downgrade() -> None:
    for column in ("counted", "count_settled_at", "cost_settled_at"):
        op.drop_column("reservations", column, schema=SCHEMA)
