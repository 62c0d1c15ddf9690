"""Generations name their purpose and subject instead of a story and a kind.

Revision ID: 0003
Revises: 0002
Create Date: 2025-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCHEMA = "generation"


def upgrade() -> None:
    # The name 0001 gave it: its own name, prefixed once more by the naming convention.
    op.drop_constraint(op.f("ck_generations_ck_generations_kind"), "generations", schema=SCHEMA)
    op.drop_index("ix_generations_story_id", table_name="generations", schema=SCHEMA)
    op.alter_column(
        "generations", "kind", new_column_name="purpose", type_=sa.String(32), schema=SCHEMA
    )
    # Every generation so far wrote a segment of a story.
    op.execute(f"UPDATE {SCHEMA}.generations SET purpose = 'story_' || purpose")
    op.alter_column("generations", "story_id", new_column_name="subject_id", schema=SCHEMA)
    op.add_column(
        "generations",
        sa.Column("subject_kind", sa.String(32), nullable=False, server_default="story"),
        schema=SCHEMA,
    )
    op.alter_column("generations", "subject_kind", server_default=None, schema=SCHEMA)
    op.create_index(
        "ix_generations_subject", "generations", ["subject_kind", "subject_id"], schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_index("ix_generations_subject", table_name="generations", schema=SCHEMA)
    # Only story segments fit the old shape.
    op.execute(f"DELETE FROM {SCHEMA}.generations WHERE subject_kind <> 'story'")
    op.drop_column("generations", "subject_kind", schema=SCHEMA)
    op.alter_column("generations", "subject_id", new_column_name="story_id", schema=SCHEMA)
    op.execute(f"UPDATE {SCHEMA}.generations SET purpose = substr(purpose, 7)")
    op.alter_column(
        "generations", "purpose", new_column_name="kind", type_=sa.String(16), schema=SCHEMA
    )
    op.create_index("ix_generations_story_id", "generations", ["story_id"], schema=SCHEMA)
    op.create_check_constraint(
        "ck_generations_kind",
        "generations",
        "kind IN ('opening', 'continuation', 'ending')",
        schema=SCHEMA,
    )
