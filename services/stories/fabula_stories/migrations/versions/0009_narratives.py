"""Projects and the versioned narratives generation jobs write into them.

Revision ID: 0009_narratives
Revises: 0008_shaping
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009_narratives"
down_revision: str | None = "0008_shaping"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "stories"
_PRODUCTION_TYPES = "('short_story', 'novelette', 'novella', 'chapter', 'scene')"


def _created_at() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("default_genre", sa.String(50), nullable=False, server_default=""),
        sa.Column("default_production_type", sa.String(20)),
        sa.Column("world_notes", sa.Text(), nullable=False, server_default=""),
        sa.Column("narrative_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("total_word_count", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("total_cost_usd", sa.Numeric(18, 9), nullable=False, server_default="0"),
        _created_at(),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("id", name="pk_projects"),
        sa.CheckConstraint(
            f"default_production_type IS NULL OR default_production_type IN {_PRODUCTION_TYPES}",
            name="ck_projects_default_production_type_known",
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_projects_user_id_created_at_id",
        "projects",
        ["user_id", sa.text("created_at DESC"), sa.text("id DESC")],
        schema=SCHEMA,
    )
    op.create_table(
        "narratives",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("parent_narrative_id", sa.Uuid()),
        sa.Column("root_narrative_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("production_type", sa.String(20), nullable=False),
        sa.Column("genre", sa.String(50), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("word_count", sa.Integer(), nullable=False),
        sa.Column("quality_metrics", postgresql.JSONB(), nullable=False),
        sa.Column("overall_quality_score", sa.Double(), nullable=False),
        sa.Column("cost_usd", sa.Numeric(18, 9), nullable=False),
        sa.Column("tokens_used", sa.BigInteger(), nullable=False),
        sa.Column("view_count", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("download_count", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column(
            "export_formats", postgresql.ARRAY(sa.Text()), nullable=False, server_default="{}"
        ),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_narratives"),
        sa.ForeignKeyConstraint(
            ["project_id"],
            [f"{SCHEMA}.projects.id"],
            ondelete="CASCADE",
            name="fk_narratives_project_id_projects",
        ),
        sa.UniqueConstraint("job_id", name="uq_narratives_job_id"),
        sa.CheckConstraint(
            f"production_type IN {_PRODUCTION_TYPES}", name="ck_narratives_production_type_known"
        ),
        sa.CheckConstraint("version >= 1", name="ck_narratives_version_positive"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_narratives_project_id_created_at_id",
        "narratives",
        ["project_id", sa.text("created_at DESC"), sa.text("id DESC")],
        schema=SCHEMA,
    )
    op.create_index(
        "ix_narratives_root_narrative_id_version",
        "narratives",
        ["root_narrative_id", "version"],
        schema=SCHEMA,
    )
    op.create_index("ix_narratives_user_id", "narratives", ["user_id"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("narratives", schema=SCHEMA)
    op.drop_table("projects", schema=SCHEMA)
