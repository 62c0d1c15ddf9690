"""Generations and the outbox.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "generation"


def upgrade() -> None:
    op.create_table(
        "generations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("story_id", sa.String(64), nullable=False),
        sa.Column("reservation_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("usage_estimated", sa.Boolean(), nullable=False),
        sa.Column("cost_usd", sa.Numeric(18, 9), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "kind IN ('opening', 'continuation', 'ending')", name="ck_generations_kind"
        ),
        sa.CheckConstraint(
            "outcome IN ('completed', 'cancelled', 'failed')", name="ck_generations_outcome"
        ),
        sa.CheckConstraint(
            "prompt_tokens >= 0 AND completion_tokens >= 0",
            name="ck_generations_tokens_not_negative",
        ),
        sa.CheckConstraint("cost_usd >= 0", name="ck_generations_cost_not_negative"),
        sa.PrimaryKeyConstraint("id", name="pk_generations"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_generations_user_id_created_at", "generations", ["user_id", "created_at"], schema=SCHEMA
    )
    op.create_index("ix_generations_story_id", "generations", ["story_id"], schema=SCHEMA)
    op.create_index(
        "ix_generations_reservation_id", "generations", ["reservation_id"], schema=SCHEMA
    )

    # fabula_common.messaging.outbox.outbox_table
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
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_outbox_pending",
        "outbox",
        ["created_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("published_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_pending", table_name="outbox", schema=SCHEMA)
    op.drop_table("outbox", schema=SCHEMA)
    op.drop_index("ix_generations_reservation_id", table_name="generations", schema=SCHEMA)
    op.drop_index("ix_generations_story_id", table_name="generations", schema=SCHEMA)
    op.drop_index("ix_generations_user_id_created_at", table_name="generations", schema=SCHEMA)
    op.drop_table("generations", schema=SCHEMA)
