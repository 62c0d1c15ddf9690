"""Tutorials (a shared catalog), and what a user keeps of their pictures:
drawings (media photos they recorded, with edited versions) and the
bilingual stories written about them. The image bytes live in media; these
rows name the photos."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

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
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from fabula_stories.database import Base

CATEGORY_MAX_LENGTH = 50
TITLE_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 2000
URL_MAX_LENGTH = 2000
PHOTO_ID_MAX_LENGTH = 64


def _timestamp() -> Mapped[dt.datetime]:
    return mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())


class Tutorial(Base):
    __tablename__ = "tutorials"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    category: Mapped[str] = mapped_column(String(CATEGORY_MAX_LENGTH))
    title_en: Mapped[str] = mapped_column(String(TITLE_MAX_LENGTH))
    title_de: Mapped[str] = mapped_column(String(TITLE_MAX_LENGTH))
    description_en: Mapped[str] = mapped_column(Text)
    description_de: Mapped[str] = mapped_column(Text)
    thumbnail_url: Mapped[str] = mapped_column(String(URL_MAX_LENGTH))
    # [{"step_number", "instruction_en", "instruction_de", "image_url"}], in order.
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    created_at: Mapped[dt.datetime] = _timestamp()
    updated_at: Mapped[dt.datetime] = _timestamp()


Index("ix_tutorials_category_created_at", Tutorial.category, Tutorial.created_at)


class Drawing(Base):
    __tablename__ = "drawings"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    # The media photo of the upload.
    photo_id: Mapped[str] = mapped_column(String(PHOTO_ID_MAX_LENGTH))
    tutorial_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("stories.tutorials.id", ondelete="SET NULL")
    )
    # False once media deleted the upload's photo (PhotoDeleted).
    photo_available: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    created_at: Mapped[dt.datetime] = _timestamp()
    updated_at: Mapped[dt.datetime] = _timestamp()


Index(
    "ix_drawings_user_id_created_at_id",
    Drawing.user_id,
    Drawing.created_at.desc(),
    Drawing.id.desc(),
)
Index("ix_drawings_photo_id", Drawing.photo_id)


class DrawingEdit(Base):
    """An edited version of a drawing: another photo of the same user."""

    __tablename__ = "drawing_edits"
    __table_args__ = (Index("ix_drawing_edits_drawing_id_version", "drawing_id", "version", unique=True),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    drawing_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("stories.drawings.id", ondelete="CASCADE")
    )
    photo_id: Mapped[str] = mapped_column(String(PHOTO_ID_MAX_LENGTH))
    # 1.. in order.
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = _timestamp()


Index("ix_drawing_edits_photo_id", DrawingEdit.photo_id)


class PictureStory(Base):
    __tablename__ = "picture_stories"
    __table_args__ = (
        CheckConstraint("generation_time_ms >= 0", name="generation_time_not_negative"),
    )

    # Also the generation's id (and billing's reservation's).
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    drawing_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("stories.drawings.id", ondelete="CASCADE")
    )
    # The photo the story was written about (the drawing's newest version then).
    photo_id: Mapped[str] = mapped_column(String(PHOTO_ID_MAX_LENGTH))
    title_en: Mapped[str] = mapped_column(String(TITLE_MAX_LENGTH))
    text_en: Mapped[str] = mapped_column(Text)
    title_de: Mapped[str] = mapped_column(String(TITLE_MAX_LENGTH))
    text_de: Mapped[str] = mapped_column(Text)
    direction: Mapped[str] = mapped_column(Text, default="", server_default="")
    generation_time_ms: Mapped[int] = mapped_column(Integer)
    is_favorite: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    # {"checked", "checker", "flagged", "categories"}: what the moderation said.
    moderation: Mapped[dict[str, Any]] = mapped_column(JSONB)
    provider: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    is_language_model: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[dt.datetime] = _timestamp()
    updated_at: Mapped[dt.datetime] = _timestamp()


Index(
    "ix_picture_stories_user_id_created_at_id",
    PictureStory.user_id,
    PictureStory.created_at.desc(),
    PictureStory.id.desc(),
)
Index("ix_picture_stories_drawing_id", PictureStory.drawing_id)
