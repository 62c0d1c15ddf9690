"""All SQL of the billing service. Functions take the caller's session and
never commit.

Lock order, everywhere: a reservation row before its account row, and
account rows in user-id order, so concurrent transactions cannot deadlock.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal

import asyncpg
from sqlalchemy import (
    BigInteger,
    DateTime,
    String,
    Uuid,
    bindparam,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, Insert, insert
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql.selectable import TableValuedAlias
from sqlalchemy.util import greenlet_spawn

from fabula_billing.usage.models import (
    Account,
    Reservation,
    ReservationStatus,
    UsageLedgerEntry,
    Usd,
)

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


def _plan_limits() -> TableValuedAlias:
    """The configured plans as rows (name, generations_limit, cost_limit_usd),
    from three array parameters; a NULL limit is unlimited."""
    return (
        func.unnest(
            bindparam("plan_names", type_=ARRAY(String)),
            bindparam("generations_limits", type_=ARRAY(BigInteger)),
            bindparam("cost_limits", type_=ARRAY(Usd)),
        )
        .table_valued("name", "generations_limit", "cost_limit_usd")
        .render_derived(name="plan")
    )


def _build_reserve_statement() -> Insert:
    # Core, on the tables: no ORM work at execution. Parameter names differ
    # from column names (an UPDATE would take such a parameter as a SET).
    accounts, reservations = Account.__table__.c, Reservation.__table__.c
    plan = _plan_limits()
    estimate = bindparam("estimate", type_=Usd)
    granted = (
        update(Account.__table__)
        .where(
            accounts.user_id == bindparam("for_user_id", type_=Uuid),
            accounts.period_end > bindparam("now", type_=DateTime(timezone=True)),
            accounts.plan == plan.c.name,
            or_(
                plan.c.generations_limit.is_(None),
                accounts.generations_used + accounts.generations_reserved + 1
                <= plan.c.generations_limit,
            ),
            or_(
                plan.c.cost_limit_usd.is_(None),
                accounts.cost_used_usd + accounts.cost_reserved_usd + estimate
                <= plan.c.cost_limit_usd,
            ),
        )
        .values(
            generations_reserved=accounts.generations_reserved + 1,
            cost_reserved_usd=accounts.cost_reserved_usd + estimate,
            updated_at=func.now(),
        )
        .returning(accounts.user_id)
        .cte("granted")
    )
    return (
        insert(Reservation.__table__)
        .from_select(
            ["id", "user_id", "status", "estimated_cost_usd", "expires_at"],
            select(
                bindparam("new_reservation_id", type_=Uuid),
                granted.c.user_id,
                literal(ReservationStatus.reserved.value, String),
                estimate,
                bindparam("holds_until", type_=DateTime(timezone=True)),
            ),
        )
        .returning(reservations.id)
    )


# Compiled once, for asyncpg. The hot path sends this text on the pooled
# driver connection: asyncpg prepares it once per connection, and none of
# SQLAlchemy's per-call execution work (compiled cache lookup, execution
# context, cursor adaptation, result wrapping) is done.
_RESERVE_IN_CURRENT_PERIOD = _build_reserve_statement().compile(dialect=asyncpg_dialect())
RESERVE_IN_CURRENT_PERIOD_SQL = str(_RESERVE_IN_CURRENT_PERIOD)


@dataclass(frozen=True)
class PlanLimits:
    """Every configured plan's limits, as the reserve statement takes them."""

    plan_names: list[str]
    generations_limits: list[int | None]
    cost_limits: list[Decimal | None]


def reserve_arguments(
    reservation_id: uuid.UUID,
    user_id: uuid.UUID,
    estimated_cost_usd: Decimal,
    expires_at: dt.datetime,
    now: dt.datetime,
    limits: PlanLimits,
) -> list[object]:
    """The positional arguments of RESERVE_IN_CURRENT_PERIOD_SQL."""
    params = _RESERVE_IN_CURRENT_PERIOD.construct_params(
        {
            "new_reservation_id": reservation_id,
            "for_user_id": user_id,
            "estimate": estimated_cost_usd,
            "holds_until": expires_at,
            "now": now,
            **limits.__dict__,
        }
    )
    return [params[name] for name in _RESERVE_IN_CURRENT_PERIOD.positiontup]


@asynccontextmanager
async def driver_connection(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection as asyncpg's own, outside any transaction (each
    statement commits on its own): no SQLAlchemy Connection around it."""
    pooled = await engine.raw_connection()
    try:
        yield pooled.driver_connection
    finally:
        # In a greenlet: returning it may close it (an overflow connection).
        await greenlet_spawn(pooled.close)


async def reserve_in_current_period(
    connection: asyncpg.Connection,
    reservation_id: uuid.UUID,
    user_id: uuid.UUID,
    estimated_cost_usd: Decimal,
    expires_at: dt.datetime,
    now: dt.datetime,
    limits: PlanLimits,
) -> bool:
    """Reserve one generation and its estimate on an account in the period of
    `now`, if that keeps it within its plan's limits (the plan rule: written
    here only), and insert the reservation: one statement, atomic on its own.
    False, with nothing changed, when the account is missing, its period has
    ended, its plan is not in `limits` or a limit would be exceeded.

    The account row is locked first, then the reservation inserted: if its id
    exists (a retry, or another user's id) the statement fails with asyncpg's
    UniqueViolationError and changes nothing. Postgres re-checks the condition
    against the latest row after waiting for its lock, so concurrent
    reservations can never overshoot.

    `connection` is asyncpg's, not in a transaction (`driver_connection`, or
    an AUTOCOMMIT Connection's driver connection)."""
    inserted = await connection.fetchval(
        RESERVE_IN_CURRENT_PERIOD_SQL,
        *reserve_arguments(reservation_id, user_id, estimated_cost_usd, expires_at, now, limits),
    )
    return inserted is not None


async def insert_reservation_if_new(
    session: AsyncSession,
    reservation_id: uuid.UUID,
    user_id: uuid.UUID,
    estimated_cost_usd: Decimal,
    expires_at: dt.datetime,
    status: ReservationStatus = ReservationStatus.reserved,
) -> bool:
    """Insert the reservation; False when one with its id exists already (a
    concurrent insert of the same id waits for the first to commit or roll back)."""
    inserted = await session.scalar(
        insert(Reservation)
        .values(
            id=reservation_id,
            user_id=user_id,
            status=status,
            estimated_cost_usd=estimated_cost_usd,
            expires_at=expires_at,
        )
        .on_conflict_do_nothing(index_elements=[Reservation.id])
        .returning(Reservation.id)
    )
    return inserted is not None


async def get_reservation(session: AsyncSession, reservation_id: uuid.UUID) -> Reservation | None:
    return await session.scalar(
        select(Reservation)
        .where(Reservation.id == reservation_id)
        .execution_options(populate_existing=True)
    )


async def lock_reservation(
    session: AsyncSession, reservation_id: uuid.UUID, user_id: uuid.UUID
) -> Reservation | None:
    return await session.scalar(
        select(Reservation)
        .where(Reservation.id == reservation_id, Reservation.user_id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def update_reservation(
    session: AsyncSession, reservation_id: uuid.UUID, **values: object
) -> None:
    await session.execute(
        update(Reservation)
        .where(Reservation.id == reservation_id)
        .values(**values)
        .execution_options(**_NO_SYNC)
    )


async def mark_ledger_counted(
    session: AsyncSession, user_id: uuid.UUID, generation_id: str, counted: bool
) -> None:
    """Set whether the usage entries of a generation counted against the plan."""
    await session.execute(
        update(UsageLedgerEntry)
        .where(UsageLedgerEntry.user_id == user_id, UsageLedgerEntry.generation_id == generation_id)
        .values(counted=counted)
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
    user_id: uuid.UUID | None
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
    # When it is applied: the moment the account's counters move (the usage
    # breakdown picks a period's entries by it).
    recorded_at: dt.datetime


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
    id: uuid.UUID
    user_id: uuid.UUID
    # The holds it still had, given back now.
    generations: int
    estimated_cost_usd: Decimal


async def due_reservation_ids(
    session: AsyncSession, now: dt.datetime, limit: int
) -> list[uuid.UUID]:
    """Up to `limit` reservations past their expiry whose usage is not settled
    (those whose usage is settled hold only their count, which the owner's
    delivered or discarded event releases), oldest expiry first."""
    return list(
        await session.scalars(
            select(Reservation.id)
            .where(
                Reservation.status == ReservationStatus.reserved,
                Reservation.cost_settled_at.is_(None),
                Reservation.expires_at <= now,
            )
            .order_by(Reservation.expires_at)
            .limit(limit)
        )
    )


async def expire_reservations(
    session: AsyncSession, ids: list[uuid.UUID], now: dt.datetime
) -> list[ExpiredReservation]:
    """Mark those of `ids` still due (reserved, usage unsettled, past their
    expiry) as expired. Rows another transaction holds (being settled or
    released right now) are skipped: they are no longer the sweep's to give
    back, or will be next time."""
    due = (
        select(Reservation.id)
        .where(
            Reservation.id.in_(ids),
            Reservation.status == ReservationStatus.reserved,
            Reservation.cost_settled_at.is_(None),
            Reservation.expires_at <= now,
        )
        .with_for_update(skip_locked=True)
    )
    rows = await session.execute(
        update(Reservation)
        .where(Reservation.id.in_(due.scalar_subquery()))
        .values(status=ReservationStatus.expired)
        .returning(
            Reservation.id,
            Reservation.user_id,
            Reservation.count_settled_at.is_(None),
            Reservation.estimated_cost_usd,
        )
        .execution_options(**_NO_SYNC)
    )
    return [
        ExpiredReservation(id, user_id, 1 if holds_count else 0, cost)
        for id, user_id, holds_count, cost in rows
    ]


async def postpone_expiry(
    session: AsyncSession, ids: list[uuid.UUID], until: dt.datetime
) -> None:
    """Look at these reservations again at `until`, if they still hold quota then."""
    await session.execute(
        update(Reservation)
        .where(Reservation.id.in_(ids), Reservation.status == ReservationStatus.reserved)
        .values(expires_at=until)
        .execution_options(**_NO_SYNC)
    )
