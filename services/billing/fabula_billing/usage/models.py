"""Billing tables (schema `billing`)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Identity,
    Index,
    Integer,
    Numeric,
    String,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from fabula_billing.database import Base

# Dollars with nine decimal places (fabula_common.money.USD_QUANTUM).
Usd = Numeric(18, 9)


class ReservationStatus(StrEnum):
    # Holding quota: the generation's count and/or its estimated cost, each
    # until the event that settles it (see Reservation).
    reserved = "reserved"
    # Both settled, the generation counted; or a cost-only reservation's cost settled.
    settled = "settled"
    released = "released"  # given back uncounted (failed, discarded, or by its caller)
    expired = "expired"  # given back by the safety-net expiry (a producer lost its records)


class Account(Base):
    """A user's plan and the counters of the current period. `*_used` count
    settled usage; `*_reserved` count reservations still outstanding."""

    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint("generations_used >= 0", name="generations_used_non_negative"),
        CheckConstraint("generations_reserved >= 0", name="generations_reserved_non_negative"),
        CheckConstraint("cost_used_usd >= 0", name="cost_used_non_negative"),
        CheckConstraint("cost_reserved_usd >= 0", name="cost_reserved_non_negative"),
        CheckConstraint("period_start < period_end", name="period_ordered"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    plan: Mapped[str] = mapped_column(String(32))
    period_start: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    period_end: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    generations_used: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    generations_reserved: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    cost_used_usd: Mapped[Decimal] = mapped_column(Usd, server_default=text("0"))
    cost_reserved_usd: Mapped[Decimal] = mapped_column(Usd, server_default=text("0"))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class ReservationHolds:
    """What a reservation still holds (for the model and its locked copies)."""

    status: str
    cost_settled_at: dt.datetime | None
    count_settled_at: dt.datetime | None
    cost_only: bool

    @property
    def holds_cost(self) -> bool:
        return self.status == ReservationStatus.reserved and self.cost_settled_at is None

    @property
    def holds_count(self) -> bool:
        return (
            self.status == ReservationStatus.reserved
            and self.count_settled_at is None
            and not self.cost_only
        )


class Reservation(ReservationHolds, Base):
    """Two holds on the account while `status` is reserved: one generation in
    `generations_reserved` (the count hold) and the estimate in
    `cost_reserved_usd` (the cost hold). The call's UsageRecorded settles the
    cost (`cost_settled_at`); the count is settled (`count_settled_at`,
    `counted`) by that event too when the call counts on completion or failed,
    else by the owner's GenerationDelivered / GenerationDiscarded. Each is
    applied once, in whichever order the events arrive.

    A cost-only reservation (`cost_only`: a call metered as cost only, such
    as story suggestions) holds the cost alone: no generation was reserved,
    so none is given back and its usage never counts as one."""

    __tablename__ = "reservations"
    __table_args__ = (
        CheckConstraint(
            "status IN ('reserved', 'settled', 'released', 'expired')", name="status_known"
        ),
        CheckConstraint("estimated_cost_usd >= 0", name="estimated_cost_non_negative"),
        Index("ix_reservations_user_id_created_at", "user_id", "created_at"),
        # The expiry worker's scan: only reservations still holding quota.
        Index(
            "ix_reservations_expires_at_reserved",
            "expires_at",
            postgresql_where=text("status = 'reserved'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    status: Mapped[str] = mapped_column(String(16))
    estimated_cost_usd: Mapped[Decimal] = mapped_column(Usd)
    actual_cost_usd: Mapped[Decimal | None] = mapped_column(Usd)
    generation_id: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    settled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    cost_settled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    count_settled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # Whether the generation counted against the plan, once its count is settled.
    counted: Mapped[bool | None] = mapped_column(Boolean)
    # Holds the estimated cost and no generation (see above).
    cost_only: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))


@dataclass(slots=True)
class LockedReservation(ReservationHolds):
    """A reservation row locked by a settling transaction, as a plain object:
    events change it in memory, then it is written back in one statement
    (repository.save_settlements). Settling a batch builds thousands; an ORM
    instance costs ten times as much."""

    id: uuid.UUID
    user_id: uuid.UUID
    status: str
    estimated_cost_usd: Decimal
    actual_cost_usd: Decimal | None
    generation_id: str | None
    created_at: dt.datetime
    expires_at: dt.datetime
    settled_at: dt.datetime | None
    cost_settled_at: dt.datetime | None
    count_settled_at: dt.datetime | None
    counted: bool | None
    cost_only: bool


class UsageLedgerEntry(Base):
    """One row per usage event applied: the audit trail behind the counters."""

    __tablename__ = "usage_ledger"
    __table_args__ = (
        # Usage logs: a user's entries newest first, paged by (occurred_at, id).
        Index("ix_usage_ledger_user_id_occurred_at_id", "user_id", "occurred_at", "id"),
        # Usage breakdown: a user's entries applied in a period.
        Index("ix_usage_ledger_user_id_recorded_at", "user_id", "recorded_at"),
        # A generation's entries, marked counted or not when its count is settled.
        Index("ix_usage_ledger_generation_id_user_id", "generation_id", "user_id"),
        CheckConstraint("cost_usd >= 0", name="cost_non_negative"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    # NULL once the user is deleted: the entry is kept for accounting,
    # anonymised (its reservation, generation and subject ids cleared too).
    user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # Not a foreign key: usage without a known reservation is still recorded.
    reservation_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # Free-form text from the producer: unbounded, so no event is refused for its length.
    generation_id: Mapped[str] = mapped_column(String)
    # What the model call was for (e.g. "story_opening") and what it was about
    # (e.g. kind "story" and the story's id), for usage logs.
    purpose: Mapped[str] = mapped_column(String)
    subject_kind: Mapped[str] = mapped_column(String)
    subject_id: Mapped[str] = mapped_column(String)
    # What the producer said about the call (UsageRecorded.attributes, string
    # to string), e.g. {"production_type": "short_story", "stage": "draft-1"}.
    attributes: Mapped[dict[str, str]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb")
    )
    model: Mapped[str] = mapped_column(String)
    provider: Mapped[str] = mapped_column(String)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    usage_estimated: Mapped[bool] = mapped_column(Boolean)
    cost_usd: Mapped[Decimal] = mapped_column(Usd)
    outcome: Mapped[str] = mapped_column(String(16))
    # Whether this event was counted against the user's quota.
    counted: Mapped[bool] = mapped_column(Boolean)
    occurred_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
