"""The generation schema: one row per model call, and the outbox."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from fabula_generation.database import Base


class Generation(Base):
    """A model call as billed: who, what it produced, what it cost, how it ended.

    Written as "started" before quota is reserved (with the prompt's estimated
    usage), updated to its outcome when the call ends."""

    __tablename__ = "generations"
    __table_args__ = (
        CheckConstraint(
            "outcome IN ('started', 'completed', 'cancelled', 'failed')", name="outcome"
        ),
        CheckConstraint(
            "prompt_tokens >= 0 AND completion_tokens >= 0", name="tokens_not_negative"
        ),
        CheckConstraint("cost_usd >= 0", name="cost_not_negative"),
        Index("ix_generations_user_id_created_at", "user_id", "created_at"),
        Index("ix_generations_subject", "subject_kind", "subject_id"),
        Index("ix_generations_reservation_id", "reservation_id"),
        # The sweeper's scan: calls still running, or abandoned by a dead process.
        Index(
            "ix_generations_started_created_at",
            "created_at",
            postgresql_where=text("outcome = 'started'"),
        ),
        # A restarted instance's scan: what it left started.
        Index(
            "ix_generations_started_owner",
            "owner",
            postgresql_where=text("outcome = 'started'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    # Ids owned by other services, kept as they were given.
    user_id: Mapped[str] = mapped_column(String(64))
    reservation_id: Mapped[str] = mapped_column(String(64))
    # What the call was for (domain.Purpose; no check constraint, so a new
    # purpose needs no migration) and what it was about (e.g. "story", its id).
    purpose: Mapped[str] = mapped_column(String(32))
    subject_kind: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(64))
    provider: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(128))
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    usage_estimated: Mapped[bool] = mapped_column(Boolean)
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(18, 9))
    duration_ms: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))
    # When the call counts against the plan (domain.Delivery).
    delivery: Mapped[str] = mapped_column(String(32))
    # The process instance serving the call (Settings.instance_name): when it
    # starts again, whatever it left started is settled at once. None for
    # generations recorded before instances were named.
    owner: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text)
    # Facts for usage logs, sent as UsageRecorded.attributes (a job's call:
    # job_id, stage, production_type); None: none.
    attributes: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
