"""All SQL of the billing service. Functions take the caller's session and
never commit.

Lock order, everywhere: a reservation row before its account row, and
account rows in user-id order, so concurrent transactions cannot deadlock.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_billing.usage.models import Account, Reservation, ReservationStatus, UsageLedgerEntry

# Statements below address rows by key; nothing loaded in the session needs syncing.
_NO_SYNC = {"synchronize_session": False}


async def create_account_if_missing(
    session: AsyncSession,
    user_id: uuid.UUID,
    plan: str,
    period_start: dt.datetime,
    period_end: dt.datetime,
) -> bool:
    """Open the account on `plan`; True if it was created now."""
    created = await session.scalar(
        insert(Account)
        .values(user_id=user_id, plan=plan, period_start=period_start, period_end=period_end)
        .on_conflict_do_nothing(index_elements=[Account.user_id])
        .returning(Account.user_id)
    )
    return created is not None


async def start_period_if_ended(
    session: AsyncSession,
    user_id: uuid.UUID,
    now: dt.datetime,
    period_start: dt.datetime,
    period_end: dt.datetime,
) -> bool:
    """Move the account into the period [period_start, period_end) and zero its
    usage if its period ended before `now`. Reserved counters stay: they track
    reservations still outstanding, whichever period they were made in."""
    rolled = await session.scalar(
        update(Account)
        .where(Account.user_id == user_id, Account.period_end <= now)
        .values(
            period_start=period_start,
            period_end=period_end,
            generations_used=0,
            cost_used_usd=0,
            updated_at=func.now(),
        )
        .returning(Account.user_id)
        .execution_options(**_NO_SYNC)
    )
    return rolled is not None


async def get_account(session: AsyncSession, user_id: uuid.UUID) -> Account | None:
    return await session.scalar(
        select(Account).where(Account.user_id == user_id).execution_options(populate_existing=True)
    )


async def get_plan_name(session: AsyncSession, user_id: uuid.UUID) -> str | None:
    return await session.scalar(select(Account.plan).where(Account.user_id == user_id))


async def reserve_within_limits(
    session: AsyncSession,
    user_id: uuid.UUID,
    plan: str,
    estimated_cost_usd: Decimal,
    generations_limit: int | None,
    cost_limit_usd: Decimal | None,
) -> bool:
    """Reserve one generation and its estimate if that keeps the account within
    the limits (None = unlimited). One conditional UPDATE: Postgres re-checks
    the condition against the latest row after waiting for its lock, so
    concurrent reservations can never overshoot."""
    conditions = [Account.user_id == user_id, Account.plan == plan]
    if generations_limit is not None:
        conditions.append(
            Account.generations_used + Account.generations_reserved + 1 <= generations_limit
        )
    if cost_limit_usd is not None:
        conditions.append(
            Account.cost_used_usd + Account.cost_reserved_usd + estimated_cost_usd <= cost_limit_usd
        )
    granted = await session.scalar(
        update(Account)
        .where(*conditions)
        .values(
            generations_reserved=Account.generations_reserved + 1,
            cost_reserved_usd=Account.cost_reserved_usd + estimated_cost_usd,
            updated_at=func.now(),
        )
        .returning(Account.user_id)
        .execution_options(**_NO_SYNC)
    )
    return granted is not None


async def insert_reservation(
    session: AsyncSession,
    reservation_id: uuid.UUID,
    user_id: uuid.UUID,
    estimated_cost_usd: Decimal,
    expires_at: dt.datetime,
) -> None:
    await session.execute(
        insert(Reservation).values(
            id=reservation_id,
            user_id=user_id,
            status=ReservationStatus.reserved,
            estimated_cost_usd=estimated_cost_usd,
            expires_at=expires_at,
        )
    )


async def release_if_reserved(
    session: AsyncSession, reservation_id: uuid.UUID, user_id: uuid.UUID
) -> Decimal | None:
    """Mark the user's reservation released if it still holds quota; return
    its estimate, or None when it did not (unknown, or no longer reserved)."""
    return await session.scalar(
        update(Reservation)
        .where(
            Reservation.id == reservation_id,
            Reservation.user_id == user_id,
            Reservation.status == ReservationStatus.reserved,
        )
        .values(status=ReservationStatus.released)
        .returning(Reservation.estimated_cost_usd)
        .execution_options(**_NO_SYNC)
    )


async def reservation_exists(
    session: AsyncSession, reservation_id: uuid.UUID, user_id: uuid.UUID
) -> bool:
    found = await session.scalar(
        select(Reservation.id).where(
            Reservation.id == reservation_id, Reservation.user_id == user_id
        )
    )
    return found is not None


async def lock_reservation(
    session: AsyncSession, reservation_id: uuid.UUID, user_id: uuid.UUID
) -> Reservation | None:
    return await session.scalar(
        select(Reservation)
        .where(Reservation.id == reservation_id, Reservation.user_id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def mark_settled(
    session: AsyncSession,
    reservation_id: uuid.UUID,
    actual_cost_usd: Decimal,
    generation_id: str,
    settled_at: dt.datetime,
) -> None:
    await session.execute(
        update(Reservation)
        .where(Reservation.id == reservation_id)
        .values(
            status=ReservationStatus.settled,
            actual_cost_usd=actual_cost_usd,
            generation_id=generation_id,
            settled_at=settled_at,
        )
        .execution_options(**_NO_SYNC)
    )


async def mark_released(session: AsyncSession, reservation_id: uuid.UUID) -> None:
    await session.execute(
        update(Reservation)
        .where(Reservation.id == reservation_id)
        .values(status=ReservationStatus.released)
        .execution_options(**_NO_SYNC)
    )


async def adjust_counters(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    generations_used: int = 0,
    cost_used_usd: Decimal = Decimal(0),
    generations_reserved: int = 0,
    cost_reserved_usd: Decimal = Decimal(0),
) -> None:
    """Add the (signed) deltas to the account's counters."""
    await session.execute(
        update(Account)
        .where(Account.user_id == user_id)
        .values(
            generations_used=Account.generations_used + generations_used,
            cost_used_usd=Account.cost_used_usd + cost_used_usd,
            generations_reserved=Account.generations_reserved + generations_reserved,
            cost_reserved_usd=Account.cost_reserved_usd + cost_reserved_usd,
            updated_at=func.now(),
        )
        .execution_options(**_NO_SYNC)
    )


@dataclass(frozen=True)
class LedgerEntry:
    event_id: str
    user_id: uuid.UUID
    reservation_id: uuid.UUID | None
    generation_id: str
    purpose: str
    subject_kind: str
    subject_id: str
    model: str
    provider: str
    prompt_tokens: int
    completion_tokens: int
    usage_estimated: bool
    cost_usd: Decimal
    outcome: str
    counted: bool
    occurred_at: dt.datetime


async def add_ledger_entry(session: AsyncSession, entry: LedgerEntry) -> bool:
    """Record a usage event; False if one with its event id is already there."""
    inserted = await session.scalar(
        insert(UsageLedgerEntry)
        .values(**entry.__dict__)
        .on_conflict_do_nothing(index_elements=[UsageLedgerEntry.event_id])
        .returning(UsageLedgerEntry.id)
    )
    return inserted is not None


@dataclass(frozen=True)
class ExpiredReservation:
    user_id: uuid.UUID
    estimated_cost_usd: Decimal


async def expire_due_reservations(
    session: AsyncSession, now: dt.datetime, limit: int
) -> list[ExpiredReservation]:
    """Mark up to `limit` reservations past their expiry as expired. Rows another
    transaction holds (being settled or released right now) are skipped: they
    are no longer the sweep's to give back, or will be next time."""
    due = (
        select(Reservation.id)
        .where(Reservation.status == ReservationStatus.reserved, Reservation.expires_at <= now)
        .order_by(Reservation.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = await session.execute(
        update(Reservation)
        .where(Reservation.id.in_(due.scalar_subquery()))
        .values(status=ReservationStatus.expired)
        .returning(Reservation.user_id, Reservation.estimated_cost_usd)
        .execution_options(**_NO_SYNC)
    )
    return [ExpiredReservation(user_id, cost) for user_id, cost in rows]
