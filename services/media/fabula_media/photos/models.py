"""A user's photo and the renditions processing made of it."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum

from fabula_common.db import utcnow
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fabula_media.database import Base


class PhotoStatus(StrEnum):
    pending = "pending"
    uploaded = "uploaded"
    processing = "processing"
    completed = "completed"
    failed = "failed"


FILENAME_MAX_LENGTH = 255


class Photo(Base):
    __tablename__ = "photos"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'uploaded', 'processing', 'completed', 'failed')",
            name="status_known",
        ),
        # A user's photos, newest first (keyset pagination).
        Index("ix_photos_user_id_created_at", "user_id", "created_at", "id"),
        # The sweep: photos waiting for or in processing.
        Index(
            "ix_photos_unfinished",
            "status_changed_at",
            postgresql_where="status IN ('uploaded', 'processing')",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=PhotoStatus.pending)
    # Declared at creation; the detected one once processed.
    content_type: Mapped[str] = mapped_column(String(64), nullable=False)
    # Declared at creation; the stored original's once processed.
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    filename: Mapped[str] = mapped_column(String(FILENAME_MAX_LENGTH), nullable=False, default="")
    # Where the client's bytes go (removed once processing is over).
    object_key: Mapped[str] = mapped_column(String(512), nullable=False)
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Processing attempts begun (the sweep queues again at most a few times).
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow,
        server_default=func.now(),
    )
    # When the status last changed: the sweep's clock.
    status_changed_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, server_default=func.now()
    )
    processed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    renditions: Mapped[list[Rendition]] = relationship(
        back_populates="photo",
        cascade="all, delete-orphan",
        passive_deletes=True,
        lazy="selectin",
        order_by="Rendition.width",
    )


class Rendition(Base):
    """A stored image made from the photo: "original" (metadata stripped) or a
    WebP thumbnail ("thumb_256", ...)."""

    __tablename__ = "renditions"

    photo_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    object_key: Mapped[str] = mapped_column(String(512), nullable=False)
    content_type: Mapped[str] = mapped_column(String(64), nullable=False)
    width: Mapped[int] = mapped_column(Integer, nullable=False)
    height: Mapped[int] = mapped_column(Integer, nullable=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)

    photo: Mapped[Photo] = relationship(back_populates="renditions")
