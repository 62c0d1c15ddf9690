"""Suggestions: the per-user counter of the rate limit.

Revision ID: 0007_suggestions
Revises: 0006_leaving
Create Date: 2027-01-15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_suggestions"
down_revision = "0006_leaving"
branch_labels = None
depends_on = None

SCHEMA = "generation"


def upgrade() -> None:
    op.create_table(
        "suggestion_rate_windows",
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.CheckConstraint("calls >= 0", name="ck_suggestion_rate_windows_calls_not_negative"),
        sa.PrimaryKeyConstraint("user_id", name="pk_suggestion_rate_windows"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("suggestion_rate_windows", schema=SCHEMA)
