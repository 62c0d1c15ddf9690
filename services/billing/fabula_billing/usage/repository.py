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
    Boolean,
    DateTime,
    String,
    Uuid,
    and_,
    any_,
    bindparam,
    case,
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
    LockedReservation,
    Reservation,
    ReservationStatus,
    UsageLedgerEntry,
    Usd,
)

# Statements below address rows by key; nothing loaded in the session needs syncing.
_NO_SYNC = {"synchronize_session": False}


def _rows(name: str, table, columns) -> TableValuedAlias:
    """A batch of rows as one parameter per column (`<name>_<column>`, an
    array of the table column's type), unnested: what lets one statement
    write a whole batch. Parameters: `_row_params(name, columns, rows)`."""
    return (
        func.unnest(
            *(bindparam(f"{name}_{c}", type_=ARRAY(table.c[c].type)) for c in columns)
        )
        .table_valued(*columns)
        .render_derived(name=name)
    )


def _row_params(name: str, columns, rows) -> dict[str, list]:
    """The parameters of `_rows(name, ...)` for `rows` (objects with those attributes)."""
    return {f"{name}_{c}": [getattr(row, c) for row in rows] for c in columns}


async def create_account_if_missing(
    session: AsyncSession,
    user_id: uuid.UUID,
    plan: str,
    period_start: dt.datetime,
    period_end: dt.datetime,
) -> bool:
    """Open the account on `plan`; True if it was created now."""
    return bool(await create_accounts_if_missing(session, [user_id], plan, period_start, period_end))


def _user_ids_param():
    return any_(bindparam("user_ids", type_=ARRAY(Uuid)))


async def create_accounts_if_missing(
    session: AsyncSession,
    user_ids: list[uuid.UUID],
    plan: str,
    period_start: dt.datetime,
    period_end: dt.datetime,
) -> set[uuid.UUID]:
    """Open the accounts of `user_ids` that do not exist on `plan`, in
    user-id order (the lock order); return the ids opened now."""
    new_users = func.unnest(bindparam("user_ids", type_=ARRAY(Uuid))).table_valued(
        "user_id"
    ).render_derived(name="new_user")
    accounts = Account.__table__
    created = await session.scalars(
        insert(accounts)
        .from_select(
            ["user_id", "plan", "period_start", "period_end"],
            select(
                new_users.c.user_id,
                literal(plan, String),
                literal(period_start, DateTime(timezone=True)),
                literal(period_end, DateTime(timezone=True)),
            ).order_by(new_users.c.user_id),
        )
        .on_conflict_do_nothing(index_elements=[accounts.c.user_id])
        .returning(accounts.c.user_id),
        {"user_ids": sorted(set(user_ids))},
    )
    return set(created)


async def start_period_if_ended(
    session: AsyncSession,
    user_id: uuid.UUID,
    now: dt.datetime,
    period_start: dt.datetime,
    period_end: dt.datetime,
) -> bool:
    """Move the account into the period [period_start, period_end) and zero its
    usage if its period ended before `now` (see start_periods_if_ended)."""
    return bool(await start_periods_if_ended(session, [user_id], now, period_start, period_end))


async def start_periods_if_ended(
    session: AsyncSession,
    user_ids: list[uuid.UUID],
    now: dt.datetime,
    period_start: dt.datetime,
    period_end: dt.datetime,
) -> set[uuid.UUID]:
    """Move the accounts of `user_ids` whose period ended before `now` into
    the period [period_start, period_end) and zero their usage; return their
    ids. Reserved counters stay: they track reservations still outstanding,
    whichever period they were made in."""
    accounts = Account.__table__
    rolled = await session.scalars(
        update(accounts)
        .where(accounts.c.user_id == _user_ids_param(), accounts.c.period_end <= now)
        .values(
            period_start=period_start,
            period_end=period_end,
            generations_used=0,
            cost_used_usd=0,
            updated_at=func.now(),
        )
        .returning(accounts.c.user_id),
        {"user_ids": sorted(set(user_ids))},
    )
    return set(rolled)


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
    # The cost alone: no generation held, the generation limit not applied.
    cost_only = bindparam("holds_cost_only", type_=Boolean)
    granted = (
        update(Account.__table__)
        .where(
            accounts.user_id == bindparam("for_user_id", type_=Uuid),
            accounts.period_end > bindparam("now", type_=DateTime(timezone=True)),
            accounts.plan == plan.c.name,
            or_(
                cost_only,
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
            generations_reserved=accounts.generations_reserved + case((cost_only, 0), else_=1),
            cost_reserved_usd=accounts.cost_reserved_usd + estimate,
            updated_at=func.now(),
        )
        .returning(accounts.user_id)
        .cte("granted")
    )
    return (
        insert(Reservation.__table__)
        .from_select(
            ["id", "user_id", "status", "estimated_cost_usd", "expires_at", "cost_only"],
            select(
                bindparam("new_reservation_id", type_=Uuid),
                granted.c.user_id,
                literal(ReservationStatus.reserved.value, String),
                estimate,
                bindparam("holds_until", type_=DateTime(timezone=True)),
                cost_only,
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
    cost_only: bool = False,
) -> list[object]:
    """The positional arguments of RESERVE_IN_CURRENT_PERIOD_SQL."""
    params = _RESERVE_IN_CURRENT_PERIOD.construct_params(
        {
            "new_reservation_id": reservation_id,
            "for_user_id": user_id,
            "estimate": estimated_cost_usd,
            "holds_until": expires_at,
            "now": now,
            "holds_cost_only": cost_only,
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
    cost_only: bool = False,
) -> bool:
    """Reserve one generation and its estimate on an account in the period of
    `now` (with `cost_only`, the estimate alone: the generation limit is not
    applied), if that keeps it within its plan's limits (the plan rule:
    written here only), and insert the reservation: one statement, atomic on
    its own. False, with nothing changed, when the account is missing, its
    period has ended, its plan is not in `limits` or a limit would be exceeded.

    The account row is locked first, then the reservation inserted: if its id
    exists (a retry, or another user's id) the statement fails with asyncpg's
    UniqueViolationError and changes nothing. Postgres re-checks the condition
    against the latest row after waiting for its lock, so concurrent
    reservations can never overshoot.

    `connection` is asyncpg's, not in a transaction (`driver_connection`, or
    an AUTOCOMMIT Connection's driver connection)."""
    inserted = await connection.fetchval(
        RESERVE_IN_CURRENT_PERIOD_SQL,
        *reserve_arguments(
            reservation_id, user_id, estimated_cost_usd, expires_at, now, limits, cost_only
        ),
    )
    return inserted is not None


async def insert_released_reservations_if_new(
    session: AsyncSession, owners: dict[uuid.UUID, uuid.UUID], now: dt.datetime
) -> None:
    """Record the reservations `owners` names (id -> user id) as holding
    nothing (released, no estimate), those whose id is not taken: events name
    them that billing never saw. A concurrent insert of the same id waits for
    the first to commit or roll back."""
    if not owners:
        return
    await session.execute(
        insert(Reservation.__table__).on_conflict_do_nothing(index_elements=["id"]),
        [
            {
                "id": reservation_id,
                "user_id": user_id,
                "status": ReservationStatus.released.value,
                "estimated_cost_usd": Decimal(0),
                "expires_at": now,
            }
            for reservation_id, user_id in sorted(owners.items())
        ],
    )


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


async def lock_reservations(
    session: AsyncSession, ids: list[uuid.UUID]
) -> dict[uuid.UUID, LockedReservation]:
    """Lock the reservations of `ids` (in id order, the lock order) and
    return them as copies outside the session: a caller changes them in
    memory and writes them back with `save_settlements`."""
    if not ids:
        return {}
    table = Reservation.__table__
    rows = await session.execute(
        select(table)
        .where(table.c.id == any_(bindparam("ids", type_=ARRAY(Uuid))))
        .order_by(table.c.id)
        .with_for_update(),
        {"ids": sorted(set(ids))},
    )
    return {row.id: LockedReservation(**row._mapping) for row in rows}


# What settling changes on a reservation (see save_settlements).
_SETTLEMENT_COLUMNS = (
    "status",
    "actual_cost_usd",
    "generation_id",
    "settled_at",
    "cost_settled_at",
    "count_settled_at",
    "counted",
)


def _build_save_settlements():
    reservations = Reservation.__table__
    settled = _rows("settled", reservations, ("id", *_SETTLEMENT_COLUMNS))
    return (
        update(reservations)
        # The ANY restricts the table by its key on its own (a join alone may
        # be planned as a scan of every reservation).
        .where(reservations.c.id == any_(bindparam("settled_id")), reservations.c.id == settled.c.id)
        .values({name: settled.c[name] for name in _SETTLEMENT_COLUMNS})
    )


_SAVE_SETTLEMENTS = _build_save_settlements()


async def save_settlements(
    session: AsyncSession, reservations: list[LockedReservation]
) -> None:
    """Write the settlement columns of these reservations (locked, changed in
    memory): one statement."""
    if reservations:
        await session.execute(
            _SAVE_SETTLEMENTS, _row_params("settled", ("id", *_SETTLEMENT_COLUMNS), reservations)
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


def _build_mark_ledger_counted():
    ledger = UsageLedgerEntry.__table__
    marks = _rows("marked", ledger, ("user_id", "generation_id", "counted"))
    return (
        update(ledger)
        .where(
            # Restricts the ledger by its index on its own (a join alone was
            # planned as a scan of the whole ledger).
            ledger.c.generation_id == any_(bindparam("marked_generation_id")),
            ledger.c.user_id == marks.c.user_id,
            ledger.c.generation_id == marks.c.generation_id,
            # Most entries already say so (written in the same batch): no new row version.
            ledger.c.counted.is_distinct_from(marks.c.counted),
        )
        .values(counted=marks.c.counted)
    )


_MARK_LEDGER_COUNTED = _build_mark_ledger_counted()


@dataclass(frozen=True)
class LedgerMark:
    user_id: uuid.UUID
    generation_id: str
    counted: bool


async def mark_ledger_counted(
    session: AsyncSession, marks: dict[tuple[uuid.UUID, str], bool]
) -> None:
    """Set whether the usage entries of each (user id, generation id) counted
    against the plan: one statement."""
    if marks:
        rows = [LedgerMark(user, generation, counted) for (user, generation), counted in marks.items()]
        await session.execute(
            _MARK_LEDGER_COUNTED, _row_params("marked", ("user_id", "generation_id", "counted"), rows)
        )


@dataclass
class CounterDeltas:
    """Signed amounts to add to an account's counters."""

    generations_used: int = 0
    cost_used_usd: Decimal = Decimal(0)
    generations_reserved: int = 0
    cost_reserved_usd: Decimal = Decimal(0)

    def add(self, other: CounterDeltas) -> None:
        self.generations_used += other.generations_used
        self.cost_used_usd += other.cost_used_usd
        self.generations_reserved += other.generations_reserved
        self.cost_reserved_usd += other.cost_reserved_usd


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
    deltas = CounterDeltas(generations_used, cost_used_usd, generations_reserved, cost_reserved_usd)
    await adjust_many_counters(session, {user_id: deltas})


_DELTA_COLUMNS = ("generations_used", "cost_used_usd", "generations_reserved", "cost_reserved_usd")


def _build_adjust_statement():
    accounts = Account.__table__
    deltas = _rows("delta", accounts, ("user_id", *_DELTA_COLUMNS))
    return (
        update(accounts)
        .where(accounts.c.user_id == deltas.c.user_id)
        .values(
            {name: accounts.c[name] + deltas.c[name] for name in _DELTA_COLUMNS}
            | {"updated_at": func.now()}
        )
    )


_ADJUST_COUNTERS = _build_adjust_statement()


@dataclass(frozen=True)
class _AccountDeltas:
    user_id: uuid.UUID
    generations_used: int
    cost_used_usd: Decimal
    generations_reserved: int
    cost_reserved_usd: Decimal


async def adjust_many_counters(
    session: AsyncSession, deltas: dict[uuid.UUID, CounterDeltas]
) -> None:
    """Add each account's deltas to its counters: the accounts are locked in
    user-id order (the lock order) first, then one statement adds them all."""
    if not deltas:
        return
    if len(deltas) > 1:
        await lock_accounts(session, list(deltas))
    rows = [
        _AccountDeltas(user_id, d.generations_used, d.cost_used_usd, d.generations_reserved,
                       d.cost_reserved_usd)
        for user_id, d in deltas.items()
    ]
    await session.execute(_ADJUST_COUNTERS, _row_params("delta", ("user_id", *_DELTA_COLUMNS), rows))


async def lock_accounts(session: AsyncSession, user_ids: list[uuid.UUID]) -> None:
    """Lock these accounts in user-id order (the lock order)."""
    accounts = Account.__table__
    await session.execute(
        select(accounts.c.user_id)
        .where(accounts.c.user_id == _user_ids_param())
        .order_by(accounts.c.user_id)
        .with_for_update(),
        {"user_ids": sorted(set(user_ids))},
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
    attributes: dict[str, str]
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


async def ledger_event_ids(session: AsyncSession, event_ids: list[str]) -> set[str]:
    """Those of `event_ids` already in the ledger (applied before)."""
    if not event_ids:
        return set()
    table = UsageLedgerEntry.__table__
    return set(
        await session.scalars(
            select(table.c.event_id).where(
                table.c.event_id == any_(bindparam("event_ids", type_=ARRAY(String)))
            ),
            {"event_ids": event_ids},
        )
    )


def _build_add_ledger_entries():
    ledger = UsageLedgerEntry.__table__
    entries = _rows("entry", ledger, _LEDGER_FIELDS)
    return (
        insert(ledger)
        .from_select(list(_LEDGER_FIELDS), select(*(entries.c[name] for name in _LEDGER_FIELDS)))
        .on_conflict_do_nothing(index_elements=["event_id"])
    )


_LEDGER_FIELDS = tuple(LedgerEntry.__dataclass_fields__)
_ADD_LEDGER_ENTRIES = _build_add_ledger_entries()


async def add_ledger_entries(session: AsyncSession, entries: list[LedgerEntry]) -> None:
    """Record usage events (an event id already there is left as it is): one statement."""
    if entries:
        await session.execute(_ADD_LEDGER_ENTRIES, _row_params("entry", _LEDGER_FIELDS, entries))


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
            # A cost-only reservation never held a generation.
            and_(Reservation.count_settled_at.is_(None), Reservation.cost_only.is_(False)),
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
