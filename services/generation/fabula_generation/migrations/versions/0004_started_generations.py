"""Generations are written when they start, and say who confirms their delivery.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SCHEMA = "generation"


def upgrade() -> None:
    # The name 0001 gave it: its own name, prefixed once more by the naming convention.
    op.drop_constraint(op.f("ck_generations_ck_generations_outcome"), "generations", schema=SCHEMA)
    op.create_check_constraint(
        op.f("ck_generations_outcome"),
        "generations",
        "outcome IN ('started', 'completed', 'cancelled', 'failed')",
        schema=SCHEMA,
    )
    # Every generation so far counted on completion.
    op.add_column(
        "generations",
        sa.Column("delivery", sa.String(32), nullable=False, server_default="on_completion"),
        schema=SCHEMA,
    )
    op.alter_column("generations", "delivery", server_default=None, schema=SCHEMA)
    op.create_index(
        "ix_generations_started_created_at",
        "generations",
        ["created_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("outcome = 'started'"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_generations_started_created_at",
        table_name="generations",
        schema=SCHEMA,
        postgresql_where=sa.text("outcome = 'started'"),
    )
    op.drop_column("generations", "delivery", schema=SCHEMA)
    # A call still running cannot be expressed in the old shape: it failed.
    op.execute(f"UPDATE {SCHEMA}.generations SET outcome = 'failed' WHERE outcome = 'started'")
    op.drop_constraint(op.f("ck_generations_outcome"), "generations", schema=SCHEMA)
    op.create_check_constraint(
        op.f("ck_generations_ck_generations_outcome"),
        "generations",
        "outcome IN ('completed', 'cancelled', 'failed')",
        schema=SCHEMA,
    )
