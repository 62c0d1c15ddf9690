"""Tables of the `stories` schema."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum

from fabula_common.db import utcnow
from sqlalchemy import (
    Boolean,
    CheckConstraint,
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
)
from sqlalchemy.dialects.postgresql import ARRAY
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


class Segment(Base):
    __tablename__ = "segments"
    __table_args__ = (
        UniqueConstraint("story_id", "position", name="uq_segments_story_id_position"),
        CheckConstraint("position >= 1", name="position_positive"),
        CheckConstraint("kind IN ('opening', 'continuation', 'ending')", name="kind_known"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    story_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("stories.stories.id", ondelete="CASCADE")
    )
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # a SegmentKind value
    text: Mapped[str] = mapped_column(Text)
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
        CheckConstraint("kind IN ('opening', 'continuation', 'ending')", name="kind_known"),
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
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
