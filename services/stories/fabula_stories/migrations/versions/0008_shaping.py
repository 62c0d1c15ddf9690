"""Stories a writer shapes: segments form a tree (alternatives, branches) with
a followed path ending at the story's head; revisions of edited texts; memory,
author's note and favourites; lore; full-text search; share links; imports.

Existing stories become single-path trees: each segment's parent is the one
before it, the head is the last. Downgrading keeps only the followed path of
each story (alternatives, other branches, revisions, lore and shares go).

Revision ID: 0008_shaping
Revises: 0007_leaving
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008_shaping"
down_revision: str | None = "0007_leaving"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "stories"
# A generated column may only call immutable functions; array_to_string is
# only stable (for arrays of any type), so text[] gets an immutable wrapper.
_JOIN_WORDS = f"""
CREATE FUNCTION {SCHEMA}.join_words(text[]) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN array_to_string($1, ' ')
"""


def upgrade() -> None:
    op.execute(_JOIN_WORDS)

    # --- Segments: a tree ---------------------------------------------------
    op.add_column(
        "segments",
        sa.Column(
            "parent_id",
            sa.Uuid(),
            sa.ForeignKey(f"{SCHEMA}.segments.id", ondelete="CASCADE", name="fk_segments_parent_id"),
            nullable=True,
        ),
        schema=SCHEMA,
    )
    op.add_column(
        "segments",
        sa.Column("word_count", sa.Integer(), nullable=False, server_default="0"),
        schema=SCHEMA,
    )
    op.add_column(
        "segments", sa.Column("edited_at", sa.DateTime(timezone=True)), schema=SCHEMA
    )
    op.add_column(
        "segments",
        sa.Column("text_source", sa.String(16), nullable=False, server_default="generated"),
        schema=SCHEMA,
    )
    op.create_check_constraint(
        "text_source_known",
        "segments",
        "text_source IN ('generated', 'edited', 'restored', 'imported')",
        schema=SCHEMA,
    )
    # Every existing segment is on its story's one path.
    op.add_column(
        "segments",
        sa.Column("on_path", sa.Boolean(), nullable=False, server_default=sa.true()),
        schema=SCHEMA,
    )
    op.add_column(
        "segments",
        sa.Column(
            "search_vector",
            postgresql.TSVECTOR(),
            sa.Computed("to_tsvector('english'::regconfig, text)", persisted=True),
        ),
        schema=SCHEMA,
    )
    op.execute(
        f"""
        UPDATE {SCHEMA}.segments s
        SET parent_id = p.id
        FROM {SCHEMA}.segments p
        WHERE p.story_id = s.story_id AND p.position = s.position - 1
        """
    )
    op.execute(
        f"""
        UPDATE {SCHEMA}.segments
        SET word_count = coalesce(array_length(regexp_split_to_array(btrim(text), '\\s+'), 1), 0)
        WHERE btrim(text) <> ''
        """
    )
    op.drop_constraint("uq_segments_story_id_position", "segments", schema=SCHEMA)
    op.create_index(
        "ix_segments_story_id_position", "segments", ["story_id", "position"], schema=SCHEMA
    )
    op.create_index("ix_segments_parent_id", "segments", ["parent_id"], schema=SCHEMA)
    op.create_index(
        "uq_segments_story_id_position_on_path",
        "segments",
        ["story_id", "position"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("on_path"),
    )
    op.create_index(
        "ix_segments_search_vector",
        "segments",
        ["search_vector"],
        schema=SCHEMA,
        postgresql_using="gin",
    )

    # --- Stories: head, memory, favourite, search, import --------------------
    op.add_column("stories", sa.Column("head_segment_id", sa.Uuid()), schema=SCHEMA)
    for name in ("memory", "authors_note"):
        op.add_column(
            "stories",
            sa.Column(name, sa.Text(), nullable=False, server_default=""),
            schema=SCHEMA,
        )
    op.add_column(
        "stories",
        sa.Column("is_favorite", sa.Boolean(), nullable=False, server_default=sa.false()),
        schema=SCHEMA,
    )
    op.add_column("stories", sa.Column("import_source", sa.String(64)), schema=SCHEMA)
    op.add_column("stories", sa.Column("import_original_id", sa.String(255)), schema=SCHEMA)
    op.add_column(
        "stories",
        sa.Column(
            "search_vector",
            postgresql.TSVECTOR(),
            sa.Computed(
                "to_tsvector('english'::regconfig, (((title)::text || ' '::text) || "
                f"((genre)::text || ' '::text)) || {SCHEMA}.join_words(characters))",
                persisted=True,
            ),
        ),
        schema=SCHEMA,
    )
    op.execute(
        f"""
        UPDATE {SCHEMA}.stories st
        SET head_segment_id = last.id
        FROM (
            SELECT DISTINCT ON (story_id) story_id, id
            FROM {SCHEMA}.segments
            ORDER BY story_id, position DESC
        ) AS last
        WHERE last.story_id = st.id
        """
    )
    op.create_index(
        "ix_stories_search_vector",
        "stories",
        ["search_vector"],
        schema=SCHEMA,
        postgresql_using="gin",
    )
    op.create_index(
        "uq_stories_user_id_import",
        "stories",
        ["user_id", "import_source", "import_original_id"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("import_source IS NOT NULL"),
    )

    # --- Where a claimed generation's segment goes ---------------------------
    op.add_column(
        "pending_generations", sa.Column("parent_id", sa.Uuid()), schema=SCHEMA
    )
    op.add_column(
        "pending_generations",
        sa.Column("regenerates", sa.Boolean(), nullable=False, server_default=sa.false()),
        schema=SCHEMA,
    )

    # --- Revisions ------------------------------------------------------------
    op.create_table(
        "segment_revisions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("segment_id", sa.Uuid(), nullable=False),
        sa.Column("story_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("id", name="pk_segment_revisions"),
        sa.ForeignKeyConstraint(
            ["segment_id"],
            [f"{SCHEMA}.segments.id"],
            ondelete="CASCADE",
            name="fk_segment_revisions_segment_id_segments",
        ),
        sa.ForeignKeyConstraint(
            ["story_id"],
            [f"{SCHEMA}.stories.id"],
            ondelete="CASCADE",
            name="fk_segment_revisions_story_id_stories",
        ),
        sa.UniqueConstraint("segment_id", "number", name="uq_segment_revisions_segment_id_number"),
        sa.CheckConstraint(
            "source IN ('generated', 'edited', 'restored', 'imported')",
            name="ck_segment_revisions_source_known",
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_segment_revisions_story_id", "segment_revisions", ["story_id"], schema=SCHEMA
    )

    # --- Lore -----------------------------------------------------------------
    op.create_table(
        "lore_entries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("story_id", sa.Uuid(), nullable=False),
        sa.Column("keys", postgresql.ARRAY(sa.Text()), nullable=False, server_default="{}"),
        sa.Column(
            "secondary_keys", postgresql.ARRAY(sa.Text()), nullable=False, server_default="{}"
        ),
        sa.Column(
            "secondary_logic", sa.String(8), nullable=False, server_default="and_any"
        ),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("constant", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("id", name="pk_lore_entries"),
        sa.ForeignKeyConstraint(
            ["story_id"],
            [f"{SCHEMA}.stories.id"],
            ondelete="CASCADE",
            name="fk_lore_entries_story_id_stories",
        ),
        sa.CheckConstraint(
            "secondary_logic IN ('and_any', 'and_all', 'not_any')",
            name="ck_lore_entries_secondary_logic_known",
        ),
        schema=SCHEMA,
    )
    op.create_index("ix_lore_entries_story_id", "lore_entries", ["story_id"], schema=SCHEMA)

    # --- Share links ------------------------------------------------------------
    op.create_table(
        "story_shares",
        sa.Column("story_id", sa.Uuid(), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("view_count", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("last_viewed_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("story_id", name="pk_story_shares"),
        sa.ForeignKeyConstraint(
            ["story_id"],
            [f"{SCHEMA}.stories.id"],
            ondelete="CASCADE",
            name="fk_story_shares_story_id_stories",
        ),
        sa.UniqueConstraint("token_sha256", name="uq_story_shares_token_sha256"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("story_shares", schema=SCHEMA)
    op.drop_table("lore_entries", schema=SCHEMA)
    op.drop_table("segment_revisions", schema=SCHEMA)
    op.drop_column("pending_generations", "regenerates", schema=SCHEMA)
    op.drop_column("pending_generations", "parent_id", schema=SCHEMA)

    # Keep each story's followed path: walk up from its head.
    op.execute(
        f"""
        DELETE FROM {SCHEMA}.segments WHERE NOT on_path
        """
    )
    op.drop_index("uq_stories_user_id_import", "stories", schema=SCHEMA)
    op.drop_index("ix_stories_search_vector", "stories", schema=SCHEMA)
    for name in (
        "search_vector",
        "import_original_id",
        "import_source",
        "is_favorite",
        "authors_note",
        "memory",
        "head_segment_id",
    ):
        op.drop_column("stories", name, schema=SCHEMA)

    op.drop_index("ix_segments_search_vector", "segments", schema=SCHEMA)
    op.drop_index("uq_segments_story_id_position_on_path", "segments", schema=SCHEMA)
    op.drop_index("ix_segments_parent_id", "segments", schema=SCHEMA)
    op.drop_index("ix_segments_story_id_position", "segments", schema=SCHEMA)
    op.create_unique_constraint(
        "uq_segments_story_id_position", "segments", ["story_id", "position"], schema=SCHEMA
    )
    op.drop_constraint("ck_segments_text_source_known", "segments", schema=SCHEMA)
    for name in ("search_vector", "on_path", "text_source", "edited_at", "word_count", "parent_id"):
        op.drop_column("segments", name, schema=SCHEMA)
    op.execute(f"DROP FUNCTION {SCHEMA}.join_words(text[])")
