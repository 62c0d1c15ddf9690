"""Delivery-confirmed generations: the durable claim of each generation stories
asks for (pending_generations) and the writer holding a story's lease.

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "stories"


def upgrade() -> None:
    # Nullable without default: adding it rewrites no rows. A lease taken by a
    # writer of the previous release has none and simply expires.
    op.add_column(
        "stories", sa.Column("writing_generation_id", sa.Uuid(), nullable=True), schema=SCHEMA
    )
    op.create_table(
        "pending_generations",
        sa.Column("generation_id", sa.Uuid(), nullable=False),
        sa.Column("story_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("generation_id", name="pk_pending_generations"),
        sa.CheckConstraint(
            "kind IN ('opening', 'continuation', 'ending')",
            name="ck_pending_generations_kind_known",
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_pending_generations_claimed_until",
        "pending_generations",
        ["claimed_until"],
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_index(
        "ix_pending_generations_claimed_until", table_name="pending_generations", schema=SCHEMA
    )
    op.drop_table("pending_generations", schema=SCHEMA)
    op.drop_column("stories", "writing_generation_id", schema=SCHEMA)
