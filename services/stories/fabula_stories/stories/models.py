"""Tables of the `stories` schema."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum

from fabula_common.db import utcnow
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    func,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fabula_stories.database import Base

TITLE_MAX_LENGTH = 200
GENRE_MAX_LENGTH = 50


class SegmentKind(StrEnum):
    opening = "opening"
    continuation = "continuation"
    ending = "ending"


class Story(Base):
    __tablename__ = "stories"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    title: Mapped[str] = mapped_column(String(TITLE_MAX_LENGTH))
    genre: Mapped[str] = mapped_column(String(GENRE_MAX_LENGTH))
    characters: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    opening_line: Mapped[str | None] = mapped_column(Text)
    is_complete: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Set while a segment is being written (see service.start_writing): until
    # then no other writer may start. The writer renews it while it works, so
    # a writer that died lets the story go within one lease.
    writing_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # Which writer holds the lease: the generation it is writing with.
    writing_generation_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # The last segment of the path the story follows (see GetStory); None
    # until the opening is stored. No foreign key: the segment belongs to
    # this story and goes with it.
    head_segment_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # Always shown to the model / shown near the end of its context.
    memory: Mapped[str] = mapped_column(Text, default="", server_default="")
    authors_note: Mapped[str] = mapped_column(Text, default="", server_default="")
    is_favorite: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Where an imported story came from and its id there (None: written here).
    import_source: Mapped[str | None] = mapped_column(String(64))
    import_original_id: Mapped[str | None] = mapped_column(String(255))
    # Title, genre and characters for full-text search (segments have their own).
    search_vector: Mapped[str] = mapped_column(
        TSVECTOR,
        Computed(
            "to_tsvector('english'::regconfig, (((title)::text || ' '::text) || "
            "((genre)::text || ' '::text)) || stories.join_words(characters))",
            persisted=True,
        ),
        deferred=True,
    )
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )

    # Loaded explicitly (selectinload) where needed; never lazily behind an await.
    segments: Mapped[list[Segment]] = relationship(
        back_populates="story",
        order_by="Segment.position",
        lazy="raise",
        passive_deletes=True,
    )


# Serves ListStories: one user's stories, newest first, keyset-paginated.
Index(
    "ix_stories_user_id_created_at_id",
    Story.user_id,
    Story.created_at.desc(),
    Story.id.desc(),
)
Index("ix_stories_search_vector", Story.search_vector, postgresql_using="gin")
# An imported story is imported once per user (see ImportStory).
Index(
    "uq_stories_user_id_import",
    Story.user_id,
    Story.import_source,
    Story.import_original_id,
    unique=True,
    postgresql_where=text("import_source IS NOT NULL"),
)


class Segment(Base):
    """A segment of a story's tree: it follows its parent (None for an opening)
    at `position` = the parent's + 1. Segments sharing a parent are
    alternatives of one another; the story follows one path, up from its head."""

    __tablename__ = "segments"
    __table_args__ = (
        CheckConstraint("position >= 1", name="position_positive"),
        # picture_story: a picture story's generation (story_id is the drawing's id).
        CheckConstraint(
            "kind IN ('opening', 'continuation', 'ending', 'picture_story')", name="kind_known"
        ),
        CheckConstraint(
            "text_source IN ('generated', 'edited', 'restored', 'imported')",
            name="text_source_known",
        ),
        Index("ix_segments_story_id_position", "story_id", "position"),
        Index("ix_segments_parent_id", "parent_id"),
        Index("ix_segments_search_vector", "search_vector", postgresql_using="gin"),
        # One version per position on the followed path.
        Index(
            "uq_segments_story_id_position_on_path",
            "story_id",
            "position",
            unique=True,
            postgresql_where=text("on_path"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    story_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("stories.stories.id", ondelete="CASCADE")
    )
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("stories.segments.id", ondelete="CASCADE", name="fk_segments_parent_id")
    )
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # a SegmentKind value
    text: Mapped[str] = mapped_column(Text)
    word_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When the writer last changed the text by hand (None: never); the texts
    # it replaced are SegmentRevisions.
    edited_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # How the current text came to be the segment's (a RevisionSource value);
    # becomes the revision's source when the text is replaced.
    text_source: Mapped[str] = mapped_column(
        String(16), default="generated", server_default="generated"
    )
    # Whether the story follows it: on the path from the opening to the
    # story's head. Kept by paths.follow whenever the head moves, so reading
    # the followed path is one index range (story_id, position) WHERE on_path.
    on_path: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    search_vector: Mapped[str] = mapped_column(
        TSVECTOR, Computed("to_tsvector('english'::regconfig, text)", persisted=True), deferred=True
    )
    # Who wrote the text, as reported by the generation service.
    provider: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(200))
    is_language_model: Mapped[bool] = mapped_column(Boolean)
    # The generation service's record of the model call (another service's id:
    # no foreign key).
    generation_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )

    story: Mapped[Story] = relationship(back_populates="segments", lazy="raise")


class PendingGeneration(Base):
    """A generation stories asked for and has not yet either stored or
    discarded: written before the model call, deleted by the one transaction
    that stores its segment (GenerationDelivered) or gives it up
    (GenerationDiscarded). Exactly one of the two can delete it, so exactly one
    event goes out per generation id. Renewed by its writer while it works; one
    whose `claimed_until` passed belongs to a writer that died, and the sweeper
    discards it."""

    __tablename__ = "pending_generations"
    __table_args__ = (
        # picture_story: a picture story's generation (story_id is the drawing's id).
        CheckConstraint(
            "kind IN ('opening', 'continuation', 'ending', 'picture_story')", name="kind_known"
        ),
        # The sweeper's query: claims past their lease, oldest first.
        Index("ix_pending_generations_claimed_until", "claimed_until"),
    )

    generation_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    # No foreign key: an opening's story does not exist until it is stored,
    # and a deleted story's claim is still to be discarded.
    story_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    kind: Mapped[str] = mapped_column(String(16))  # a SegmentKind value
    claimed_until: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    # The stories process that made the claim (Settings.instance_name): when
    # it starts again it discards the claims of its previous incarnation at
    # once. None for claims made before owners were recorded.
    owner: Mapped[str | None] = mapped_column(String(255))
    # Where the segment goes: after `parent_id` (None: an opening); for a
    # regeneration, as another version of the segments there.
    parent_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    regenerates: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )


class RevisionSource(StrEnum):
    generated = "generated"
    edited = "edited"
    restored = "restored"
    imported = "imported"


class SegmentRevision(Base):
    """A text a segment had before it was edited or restored."""

    __tablename__ = "segment_revisions"
    __table_args__ = (
        UniqueConstraint("segment_id", "number", name="uq_segment_revisions_segment_id_number"),
        CheckConstraint(
            "source IN ('generated', 'edited', 'restored', 'imported')", name="source_known"
        ),
        Index("ix_segment_revisions_story_id", "story_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    segment_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("stories.segments.id", ondelete="CASCADE")
    )
    story_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("stories.stories.id", ondelete="CASCADE")
    )
    number: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16))  # a RevisionSource value
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )


class SecondaryLogic(StrEnum):
    and_any = "and_any"
    and_all = "and_all"
    not_any = "not_any"


class LoreEntry(Base):
    __tablename__ = "lore_entries"
    __table_args__ = (
        CheckConstraint(
            "secondary_logic IN ('and_any', 'and_all', 'not_any')", name="secondary_logic_known"
        ),
        Index("ix_lore_entries_story_id", "story_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    story_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("stories.stories.id", ondelete="CASCADE")
    )
    keys: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    secondary_keys: Mapped[list[str]] = mapped_column(
        ARRAY(Text), default=list, server_default="{}"
    )
    secondary_logic: Mapped[str] = mapped_column(
        String(8), default=SecondaryLogic.and_any.value, server_default="and_any"
    )
    text: Mapped[str] = mapped_column(Text)
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    constant: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )


class StoryShare(Base):
    """A story's share link: only the SHA-256 of its token is kept."""

    __tablename__ = "story_shares"

    story_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("stories.stories.id", ondelete="CASCADE"), primary_key=True
    )
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    view_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    last_viewed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
