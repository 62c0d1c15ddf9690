"""The jobs tables: the queue itself (jobs), each stage's checkpoint
(job_stages) and what a watcher is told (job_events)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from fabula_generation.database import Base

JOB_STATUSES = ("queued", "running", "completed", "failed", "cancelled")


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'running', 'completed', 'failed', 'cancelled')", name="status"
        ),
        UniqueConstraint("user_id", "idempotency_key", name="uq_jobs_user_id_idempotency_key"),
        Index("ix_jobs_user_id_created_at", "user_id", "created_at"),
        # The claim's scan: what waits, and what runs (its lease may run out).
        Index(
            "ix_jobs_claimable",
            "created_at",
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    project_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    # The ProductionBrief as JSON (json_format, field names as in the proto).
    brief: Mapped[dict[str, Any]] = mapped_column(JSONB)
    target_words: Mapped[int] = mapped_column(Integer)
    # A revision job's parent and what to do with it; None for a new narrative.
    parent_narrative_id: Mapped[str | None] = mapped_column(String(64))
    revision: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    stages: Mapped[list[str]] = mapped_column(ARRAY(Text))
    current_stage: Mapped[str | None] = mapped_column(String(32))
    progress: Mapped[float] = mapped_column(Float, server_default=text("0"))
    retry_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    error_message: Mapped[str | None] = mapped_column(Text)
    error_reason: Mapped[str | None] = mapped_column(String(64))
    estimated_cost_usd: Mapped[Decimal] = mapped_column(Numeric(18, 9))
    estimated_generations: Mapped[int] = mapped_column(Integer)
    actual_cost_usd: Mapped[Decimal] = mapped_column(Numeric(18, 9), server_default=text("0"))
    tokens_used: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    # The billing hold of the current run (the job's id, then a new one per retry).
    reservation_id: Mapped[str] = mapped_column(String(64))
    # The worker holding the job and until when: past it, the worker is dead.
    lease_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    worker: Mapped[str | None] = mapped_column(String(255))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # Made for a child-safe account (the request context when it was queued):
    # the worker makes every stage's call child-safe.
    child_safe: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    # A hash of the request the key came with: the same key with another request is refused.
    request_hash: Mapped[str | None] = mapped_column(String(64))
    # The last job_events.sequence given out.
    last_sequence: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class JobStage(Base):
    """A completed stage: its output is the checkpoint a resumed job starts from."""

    __tablename__ = "job_stages"
    __table_args__ = (UniqueConstraint("job_id", "name", name="uq_job_stages_job_id_name"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("generation.jobs.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(Integer)
    output: Mapped[str] = mapped_column(Text)
    tokens: Mapped[int] = mapped_column(BigInteger)
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(18, 9))
    completed_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class JobEvent(Base):
    __tablename__ = "job_events"

    job_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("generation.jobs.id", ondelete="CASCADE"), primary_key=True
    )
    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    type: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str | None] = mapped_column(String(32))
    text: Mapped[str | None] = mapped_column(Text)
    progress: Mapped[float] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
