"""Usage ledger attributes: what the producer said about a call (e.g. a job
stage's production_type and stage), shown in usage logs.

Revision ID: 0009_usage_attributes
Revises: 0008_cost_only
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0009_usage_attributes"
down_revision = "0008_cost_only"
branch_labels = None
depends_on = None

SCHEMA = "billing"


def upgrade() -> None:
    # A constant default: Postgres adds the column without rewriting the ledger.
    op.add_column(
        "usage_ledger",
        sa.Column(
            "attributes", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")
        ),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_column("usage_ledger", "attributes", schema=SCHEMA)
