"""Stories and their segments.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "stories"


def upgrade() -> None:
    op.create_table(
        "stories",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("genre", sa.String(50), nullable=False),
        sa.Column(
            "characters",
            postgresql.ARRAY(sa.Text()),
            nullable=False,
            server_default="{}",
        ),
        sa.Column("opening_line", sa.Text(), nullable=True),
        sa.Column("is_complete", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("id", name="pk_stories"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_stories_user_id_created_at_id",
        "stories",
        ["user_id", sa.text("created_at DESC"), sa.text("id DESC")],
        schema=SCHEMA,
    )
    op.create_table(
        "segments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("story_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("is_language_model", sa.Boolean(), nullable=False),
        sa.Column("generation_id", sa.String(64), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("id", name="pk_segments"),
        sa.ForeignKeyConstraint(
            ["story_id"],
            [f"{SCHEMA}.stories.id"],
            name="fk_segments_story_id_stories",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("story_id", "position", name="uq_segments_story_id_position"),
        sa.CheckConstraint("position >= 1", name="ck_segments_position_positive"),
        sa.CheckConstraint(
            "kind IN ('opening', 'continuation', 'ending')", name="ck_segments_kind_known"
        ),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("segments", schema=SCHEMA)
    op.drop_index("ix_stories_user_id_created_at_id", table_name="stories", schema=SCHEMA)
    op.drop_table("stories", schema=SCHEMA)
