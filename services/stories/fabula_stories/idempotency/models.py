"""Tables of the idempotency domain."""

from __future__ import annotations

import datetime as dt
import uuid

from fabula_common.db import utcnow
from sqlalchemy import CheckConstraint, DateTime, Index, String, Uuid, func
from sqlalchemy.orm import Mapped, mapped_column

from fabula_stories.database import Base


class IdempotencyKey(Base):
    """A request made with an Idempotency-Key, known only by the key's SHA-256
    and an HMAC of the request under the key. Written, unfinished, in the
    transaction that claims the request's generation (`generation_id`), and
    finished (`segment_id` set) in the one transaction that stores the
    segment, so a stored result always has its key. Unfinished, it is in
    progress while that generation's claim (a pending_generations row) lives;
    once the claim is gone without a segment, the request failed and the key
    is free again."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        CheckConstraint(
            "operation IN ('create-story', 'continue-story', 'end-story')",
            name="operation_known",
        ),
        # The purge's query.
        Index("ix_idempotency_keys_expires_at", "expires_at"),
    )

    # Keys are per user: two users' equal keys are unrelated.
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # hex SHA-256
    operation: Mapped[str] = mapped_column(String(32))  # an Operation value
    # HMAC-SHA256 (hex) under the key of the operation and its validated fields.
    request_hash: Mapped[str] = mapped_column(String(64))
    # The generation the request's latest attempt claimed (no foreign key: the
    # claim is deleted when the generation is stored or discarded).
    generation_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    # The story created, continued or ended (no foreign key: a deleted story's
    # key still answers its retries, with "not found").
    story_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    # The stored segment: set once the request has finished.
    segment_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
