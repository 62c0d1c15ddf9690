"""Billing rules: plans, monthly periods, reservations and settlement.

A reservation holds one generation (the count hold) and its estimated cost
(the cost hold); a cost-only one (a call metered as cost only: story
suggestions) holds the cost alone. Only events release them, never a clock
while the call may have completed: the call's UsageRecorded settles the cost
(and the count when the call counts on completion, or failed); the subject
owner's GenerationDelivered / GenerationDiscarded settles the count of a call
made with DELIVERY_CONFIRMED_BY_OWNER. Events arrive in any order and any
number of times; each hold is settled once.

Every method takes the caller's session and never commits: the edge (the
servicer, a consumer, the expiry worker) owns the transaction.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

import asyncpg
from fabula.generation.v1 import events_pb2 as generation_events
from fabula.generation.v1 import generation_pb2
from fabula.stories.v1 import events_pb2 as stories_events
from fabula.users.v1 import events_pb2 as users_events
from fabula_common.db import utcnow
from fabula_common.errors import (
    AlreadyExists,
    FabulaError,
    InvalidArgument,
    NotFound,
    QuotaExceeded,
)
from fabula_common.money import format_usd, from_money, parse_usd
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from fabula_billing.leaving.service import (
    AccountDeleted,
    anonymous,
    refuse_deleted,
    users_deleted,
)
from fabula_billing.metrics import RESERVATIONS_EXPIRED
from fabula_billing.settings import Plan, Settings
from fabula_billing.usage import repository as repo
from fabula_billing.usage.models import (
    Account,
    LockedReservation,
    Reservation,
    ReservationStatus,
)

log = logging.getLogger(__name__)


def parse_uuid(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        raise InvalidArgument(f"{field} must be a UUID") from None


def period_containing(moment: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The UTC calendar month around `moment`, as [start, end)."""
    moment = moment.astimezone(dt.UTC)
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if start.month == 12:
        end = start.replace(year=start.year + 1, month=1)
    else:
        end = start.replace(month=start.month + 1)
    return start, end


def outcome_name(outcome: int) -> str:
    """ "completed", "cancelled", "failed" or "unspecified" (also for values
    newer than this code)."""
    try:
        name = generation_events.GenerationOutcome.Name(outcome)
    except ValueError:
        return "unspecified"
    return name.removeprefix("GENERATION_OUTCOME_").lower()


def purpose_name(purpose: int) -> str:
    """ "story_opening", "story_continuation", ... or "unspecified" (also for
    values newer than this code)."""
    try:
        name = generation_pb2.Purpose.Name(purpose)
    except ValueError:
        return "unspecified"
    return name.removeprefix("PURPOSE_").lower()


# Purposes whose calls are paid for (cost) but are no generation of the plan:
# they reserve their cost only and never count in generations_used.
# A job's stages reserve nothing of their own (the job holds one cost-only
# reservation): their events carry no reservation id and add their cost only.
# So do a council's model calls: its message (PURPOSE_COUNCIL_MESSAGE, under
# the message's reservation) is the one generation, counted on delivery.
COST_ONLY_PURPOSES = frozenset(
    {
        generation_pb2.PURPOSE_STORY_SUGGESTIONS,
        generation_pb2.PURPOSE_JOB_STAGE,
        generation_pb2.PURPOSE_COUNCIL_STAGE_1,
        generation_pb2.PURPOSE_COUNCIL_STAGE_2,
        generation_pb2.PURPOSE_COUNCIL_STAGE_3,
        generation_pb2.PURPOSE_COUNCIL_CLARIFY,
    }
)


def counts_as_generation(event: generation_events.UsageRecorded) -> bool:
    return event.purpose not in COST_ONLY_PURPOSES


def usage_cost(event: generation_events.UsageRecorded) -> Decimal:
    """The call's cost: `cost`, or the decimal string `cost_usd` of an event
    of the previous release (such events wait in outboxes and the stream as
    long as NATS is down). InvalidArgument when unusable."""
    if event.HasField("cost"):
        return from_money(event.cost, field="cost")
    return parse_usd(event.cost_usd, field="cost_usd")


def usage_subject(event: generation_events.UsageRecorded) -> tuple[str, str]:
    """(kind, id) of what the call was about; a previous release's event
    names only its story."""
    if event.HasField("subject"):
        return event.subject.kind, event.subject.id
    if event.story_id:
        return "story", event.story_id
    return "", ""


@dataclass(frozen=True)
class GrantedReservation:
    reservation_id: uuid.UUID
    expires_at: dt.datetime


@dataclass(frozen=True)
class Usage:
    plan_name: str
    plan: Plan
    period_start: dt.datetime
    period_end: dt.datetime
    generations_used: int
    generations_reserved: int
    cost_used_usd: Decimal


class BillingService:
    def __init__(self, settings: Settings) -> None:
        self.plans = settings.plans
        self.plan_limits = repo.PlanLimits(
            plan_names=list(self.plans),
            generations_limits=[plan.generations_limit for plan in self.plans.values()],
            cost_limits=[plan.cost_limit_usd for plan in self.plans.values()],
        )
        self.default_plan = settings.default_plan
        self.default_estimate_usd = settings.default_generation_estimate_usd
        self.reservation_ttl = dt.timedelta(seconds=settings.reservation_ttl_seconds)

    def plan(self, name: str) -> Plan:
        try:
            return self.plans[name]
        except KeyError:
            # An account on a plan since removed from BILLING_PLANS_JSON:
            # an operator's mistake, not the caller's.
            raise FabulaError(f"plan {name!r} of an account is not configured") from None

    async def _current_account(
        self, session: AsyncSession, user_id: uuid.UUID, now: dt.datetime
    ) -> None:
        """Make sure the user has an account and that it is in the period of
        `now`; AccountDeleted for a deleted user (none is opened again)."""
        await refuse_deleted(session, user_id)
        period_start, period_end = period_containing(now)
        created = await repo.create_account_if_missing(
            session, user_id, self.default_plan, period_start, period_end
        )
        if not created:
            await repo.start_period_if_ended(session, user_id, now, period_start, period_end)

    async def open_account(self, session: AsyncSession, user_id: uuid.UUID) -> None:
        await self._current_account(session, user_id, utcnow())

    async def reserve_generation(
        self,
        engine: AsyncEngine,
        user_id: uuid.UUID,
        estimated_cost_usd: Decimal | None,
        reservation_id: uuid.UUID | None = None,
        *,
        cost_only: bool = False,
    ) -> GrantedReservation:
        """Hold one generation and its estimated cost against the user's plan
        (with `cost_only`, the estimated cost alone: a call metered as cost
        only, which no generation limit stops); QuotaExceeded when that would
        go over a limit of the plan. Reserving an id again answers the
        existing reservation and holds nothing more.

        Every statement here is atomic on its own (a repeated id fails the
        reserve statement, which would abort a transaction), so `engine` must
        autocommit (isolation_level AUTOCOMMIT). The usual case is that one
        statement on a pooled driver connection, one round trip; a new
        account, a new month, a refusal or a repeated id take the few more
        statements (ORM, on one connection) that find out why."""
        if engine.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            raise ValueError("reserve_generation takes an AUTOCOMMIT engine")
        estimate = self.default_estimate_usd if estimated_cost_usd is None else estimated_cost_usd
        now = utcnow()
        reservation = GrantedReservation(reservation_id or uuid.uuid4(), now + self.reservation_ttl)
        async with repo.driver_connection(engine) as driver:
            if await self._reserve(driver, reservation, user_id, estimate, now, cost_only):
                return reservation
        async with engine.connect() as connection, AsyncSession(bind=connection) as session:
            driver = (await connection.get_raw_connection()).driver_connection
            account_current = False  # known to be open and in the period of `now`
            while True:
                existing = await repo.get_reservation(session, reservation.reservation_id)
                if existing is not None:
                    if existing.user_id != user_id:
                        raise AlreadyExists("reservation_id is taken by another reservation")
                    return GrantedReservation(existing.id, existing.expires_at)
                if account_current:
                    break  # refused by the plan
                # A new user, or the first reservation of a new month: once more.
                await self._current_account(session, user_id, now)
                account_current = True
                if await self._reserve(driver, reservation, user_id, estimate, now, cost_only):
                    return reservation
            account = await repo.get_account(session, user_id)
        if account is None:  # opened above, and deleted with its user since
            raise AccountDeleted("the account was deleted")
        raise self._refusal(account, self.plan(account.plan), estimate, cost_only=cost_only)

    async def _reserve(
        self,
        driver: asyncpg.Connection,
        reservation: GrantedReservation,
        user_id: uuid.UUID,
        estimate: Decimal,
        now: dt.datetime,
        cost_only: bool,
    ) -> bool:
        """The reserve statement; False when refused or the id exists."""
        for attempt in (1, 2, 3):
            try:
                return await repo.reserve_in_current_period(
                    driver,
                    reservation.reservation_id,
                    user_id,
                    estimate,
                    reservation.expires_at,
                    now,
                    self.plan_limits,
                    cost_only,
                )
            except asyncpg.DeadlockDetectedError:
                # An event recording this very id as unknown locks the
                # reservation, then the account: Postgres chose this side.
                if attempt == 3:
                    raise
            except asyncpg.UniqueViolationError:
                return False  # the id exists: the caller looks it up
        raise AssertionError("unreachable")

    @staticmethod
    def _refusal(
        account: Account, plan: Plan, estimate: Decimal, *, cost_only: bool = False
    ) -> QuotaExceeded:
        """The refusal, with what an app shows its user in ErrorInfo's metadata:
        the plan, the quota that ran out ("generations" or "cost"), its limit (a
        count, or US dollars as a decimal string) and when the period resets
        (RFC 3339). A cost-only reservation is refused for its cost alone."""
        facts = {
            "plan": account.plan,
            "resets_at": account.period_end.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        }
        generations_taken = account.generations_used + account.generations_reserved
        if (
            not cost_only
            and plan.generations_limit is not None
            and generations_taken + 1 > plan.generations_limit
        ):
            return QuotaExceeded(
                f"monthly generation quota exceeded: the {account.plan} plan allows "
                f"{plan.generations_limit} generations per month "
                f"({account.generations_used} used, {account.generations_reserved} in progress)",
                metadata={**facts, "quota": "generations", "limit": str(plan.generations_limit)},
            )
        cost_limit = format_usd(plan.cost_limit_usd or Decimal(0))
        return QuotaExceeded(
            f"monthly cost quota exceeded: the {account.plan} plan allows "
            f"${cost_limit} per month "
            f"(${format_usd(account.cost_used_usd)} used, "
            f"${format_usd(account.cost_reserved_usd)} in progress, "
            f"${format_usd(estimate)} requested)",
            metadata={**facts, "quota": "cost", "limit": cost_limit},
        )

    async def release_reservation(
        self, session: AsyncSession, user_id: uuid.UUID, reservation_id: uuid.UUID
    ) -> bool:
        """Give back what a reservation still holds; False when it held nothing
        (already released, expired or settled). NotFound for a reservation that
        is not the user's. Its usage event, when it comes, is still billed."""
        reservation = await repo.lock_reservation(session, reservation_id, user_id)
        if reservation is None:
            raise NotFound("reservation not found")
        if reservation.status != ReservationStatus.reserved:
            return False
        await self._release_holds(session, reservation)
        await repo.update_reservation(session, reservation.id, status=ReservationStatus.released)
        return True

    async def _release_holds(
        self, session: AsyncSession, reservation: Reservation, *, count: bool = True
    ) -> None:
        await repo.adjust_counters(
            session,
            reservation.user_id,
            generations_reserved=-1 if count and reservation.holds_count else 0,
            cost_reserved_usd=(
                -reservation.estimated_cost_usd if reservation.holds_cost else Decimal(0)
            ),
        )

    async def get_usage(self, session: AsyncSession, user_id: uuid.UUID) -> Usage:
        await self._current_account(session, user_id, utcnow())
        account = await repo.get_account(session, user_id)
        if account is None:  # opened above, and deleted with its user since
            raise AccountDeleted("the account was deleted")
        return Usage(
            plan_name=account.plan,
            plan=self.plan(account.plan),
            period_start=account.period_start,
            period_end=account.period_end,
            generations_used=account.generations_used,
            generations_reserved=account.generations_reserved,
            cost_used_usd=account.cost_used_usd,
        )

    async def _settlement(
        self,
        session: AsyncSession,
        named: list[tuple[uuid.UUID, uuid.UUID, str]],
        now: dt.datetime,
    ) -> _Settlement:
        """Lock the reservations that a batch's events name ((reservation id,
        user id, what) each) and start its settlement. One billing never saw
        (its reply was lost and it was never made, or made after this event)
        is recorded holding nothing, so the event is applied once and a late
        ReserveGeneration of the same id finds it and holds nothing."""
        ids = [reservation_id for reservation_id, _, _ in named]
        reservations = await repo.lock_reservations(session, ids)
        unknown: dict[uuid.UUID, uuid.UUID] = {}
        for reservation_id, user_id, what in named:
            if reservation_id not in reservations and reservation_id not in unknown:
                log.warning(
                    "%s names reservation %s unknown for user %s; applied without one",
                    what,
                    reservation_id,
                    user_id,
                )
                unknown[reservation_id] = user_id
        if unknown:
            await repo.insert_released_reservations_if_new(session, unknown, now)
            reservations.update(await repo.lock_reservations(session, list(unknown)))
        return _Settlement(now, reservations)

    def _settle_count(
        self, settlement: _Settlement, reservation: LockedReservation, counted: bool
    ) -> None:
        """Decide whether the reservation's generation counts: release its
        count hold, count it or not, and mark its ledger entries."""
        settlement.adjust(
            reservation.user_id,
            generations_used=1 if counted else 0,
            generations_reserved=-1 if reservation.holds_count else 0,
        )
        reservation.count_settled_at = settlement.now
        reservation.counted = counted
        if reservation.cost_settled_at is not None:
            _finish(reservation, counted, settlement.now)
        settlement.changed.add(reservation.id)
        settlement.counted_marks[(reservation.user_id, str(reservation.id))] = counted

    async def settle_usage(
        self, session: AsyncSession, events: list[generation_events.UsageRecorded]
    ) -> None:
        """Apply model calls' real usage (the UsageRecorded batch handler):
        every rule is decided in memory, event after event, on the locked
        reservations; the batch's writes then go out set-based.

        Its cost is always paid and its cost hold released. A cost-only
        purpose (story suggestions), or a call under a cost-only reservation,
        never counts: it settles at once. Whether another counts
        as a generation: at once for a call that counts on completion (a
        completed one counts, a failed or cancelled one does not); for one
        whose delivery the owner confirms, only a failed or cancelled call is
        decided here (uncounted), a completed one waits for the owner's event.
        Usage is billed whatever became of its reservation (an expired or
        released one still gets billed).
        """
        usable: list[tuple[generation_events.UsageRecorded, uuid.UUID, Decimal]] = []
        for event in events:
            try:
                usable.append((event, parse_uuid(event.user_id, "user_id"), usage_cost(event)))
            except InvalidArgument as exc:
                # No retry can make this event usable: raising would only get it
                # redelivered forever.
                log.error("usage event %s dropped: %s", event.event_id, exc.message)
        if not usable:
            return
        now = utcnow()
        deleted = await users_deleted(session, [user_id for _, user_id, _ in usable])
        # Usage of deleted users: its cost goes into the ledger for accounting,
        # anonymised and uncounted; no account is opened again.
        await repo.add_ledger_entries(
            session,
            [
                repo.LedgerEntry(
                    **anonymous(_ledger_entry(event, None, None, cost, False, now).__dict__)
                )
                for event, user_id, cost in usable
                if user_id in deleted
            ],
        )
        usable = [item for item in usable if item[1] not in deleted]
        if not usable:
            return
        named = [
            (reservation_id, user_id, f"usage event {event.event_id}")
            for event, user_id, _ in usable
            if (reservation_id := optional_uuid(event.reservation_id)) is not None
        ]
        settlement = await self._settlement(session, named, now)
        settlement.ledgered = await repo.ledger_event_ids(
            session, [event.event_id for event, _, _ in usable]
        )
        for event, user_id, cost in usable:
            self._apply_usage(settlement, event, user_id, cost)
        await self._save(session, settlement)

    def _apply_usage(
        self,
        settlement: _Settlement,
        event: generation_events.UsageRecorded,
        user_id: uuid.UUID,
        cost: Decimal,
    ) -> None:
        now = settlement.now
        reservation_id = optional_uuid(event.reservation_id)
        reservation = settlement.reservation(reservation_id, user_id)
        if reservation is not None and reservation.cost_settled_at is not None:
            if reservation.generation_id == event.generation_id:
                # The same model call reported again under a new event id.
                log.info(
                    "usage event %s repeats settled generation %s; ignored",
                    event.event_id,
                    event.generation_id,
                )
                return
            # Another model call under the same reservation: bill it, unreserved.
            log.warning(
                "usage event %s: reservation %s already settled by generation %s",
                event.event_id,
                reservation_id,
                reservation.generation_id,
            )
            reservation = None

        completed = event.outcome in (
            generation_events.GENERATION_OUTCOME_COMPLETED,
            generation_events.GENERATION_OUTCOME_UNSPECIFIED,
        )
        owner_confirms = event.delivery == generation_pb2.DELIVERY_CONFIRMED_BY_OWNER
        # Decided here: counts on completion, or produced nothing usable.
        decides_count = not (owner_confirms and completed)
        cost_only = reservation is not None and reservation.cost_only
        if cost_only:
            decides_count = True  # it reserved no generation: nothing to wait for
        elif reservation is not None and reservation.count_settled_at is not None:
            decides_count = False  # the owner's event came first
        if decides_count:
            counted = (
                completed and not owner_confirms and counts_as_generation(event) and not cost_only
            )
        else:  # decided by the owner's event, or to be
            counted = bool(reservation is not None and reservation.counted)
        if event.event_id in settlement.ledgered:
            return  # already in the ledger: applied before
        settlement.ledgered.add(event.event_id)
        settlement.ledger.append(
            _ledger_entry(event, user_id, reservation_id, cost, counted, now)
        )
        if reservation is None:
            settlement.adjust(
                user_id, generations_used=1 if decides_count and counted else 0, cost_used_usd=cost
            )
            return
        settlement.adjust(
            user_id,
            cost_used_usd=cost,
            cost_reserved_usd=(
                -reservation.estimated_cost_usd if reservation.holds_cost else Decimal(0)
            ),
        )
        reservation.cost_settled_at = now  # the cost hold, released above
        reservation.actual_cost_usd = cost
        reservation.generation_id = event.generation_id
        if reservation.count_settled_at is not None:
            _finish(reservation, bool(reservation.counted), now)
        settlement.changed.add(reservation.id)
        if decides_count:
            self._settle_count(settlement, reservation, counted)

    async def count_delivered(
        self, session: AsyncSession, events: list[stories_events.GenerationDelivered]
    ) -> None:
        """The GenerationDelivered batch handler: the owner stored each
        generation's result for the user, so it counts against the plan, once."""
        await self._owner_decided(session, events, delivered=True)

    async def release_discarded(
        self, session: AsyncSession, events: list[stories_events.GenerationDiscarded]
    ) -> None:
        """The GenerationDiscarded batch handler: the result will never reach
        the user, so the generation does not count (its tokens are still paid,
        from its UsageRecorded)."""
        await self._owner_decided(session, events, delivered=False)

    async def _owner_decided(
        self,
        session: AsyncSession,
        events: list[stories_events.GenerationDelivered]
        | list[stories_events.GenerationDiscarded],
        *,
        delivered: bool,
    ) -> None:
        decided: list[tuple[uuid.UUID, uuid.UUID, str]] = []
        for event in events:
            what = f"{'delivered' if delivered else 'discarded'} event {event.event_id}"
            try:
                user_id = parse_uuid(event.user_id, "user_id")
                reservation_id = parse_uuid(event.generation_id, "generation_id")
            except InvalidArgument as exc:
                log.error("%s dropped: %s", what, exc.message)
                continue
            decided.append((reservation_id, user_id, what))
        if not decided:
            return
        deleted = await users_deleted(session, [user_id for _, user_id, _ in decided])
        for _, user_id, what in decided:
            if user_id in deleted:
                log.info("%s dropped: the user was deleted", what)
        decided = [item for item in decided if item[1] not in deleted]
        if not decided:
            return
        settlement = await self._settlement(session, decided, utcnow())
        for reservation_id, user_id, what in decided:
            reservation = settlement.reservation(reservation_id, user_id)
            if reservation is None:
                log.error("%s dropped: generation %s is another user's", what, reservation_id)
                continue
            if reservation.cost_only:
                # No generation was reserved: none can be counted or given back.
                log.error(
                    "%s names cost-only reservation %s, which holds no generation; ignored",
                    what,
                    reservation_id,
                )
                continue
            if reservation.count_settled_at is not None:
                if reservation.counted == delivered:
                    log.info("%s repeats a settled generation; ignored", what)
                else:
                    # Stories sends one of the two per generation; a failed call
                    # is never stored, so a delivery after that is a producer bug.
                    log.error(
                        "%s contradicts generation %s, already settled as %s; ignored",
                        what,
                        reservation_id,
                        "counted" if reservation.counted else "not counted",
                    )
                continue
            self._settle_count(settlement, reservation, delivered)
        await self._save(session, settlement)

    async def _save(self, session: AsyncSession, settlement: _Settlement) -> None:
        """Write a batch's settlement: the ledger, the reservations, then the
        accounts (opened and in the period of `now` first), in the lock order."""
        await repo.add_ledger_entries(session, settlement.ledger)
        await repo.save_settlements(
            session, [settlement.reservations[id] for id in settlement.changed]
        )
        if settlement.deltas:
            await self._current_accounts(session, list(settlement.deltas), settlement.now)
            await repo.adjust_many_counters(session, settlement.deltas)
        await repo.mark_ledger_counted(session, settlement.counted_marks)

    async def _current_accounts(
        self, session: AsyncSession, user_ids: list[uuid.UUID], now: dt.datetime
    ) -> None:
        """Make sure these users have accounts, in the period of `now`."""
        period_start, period_end = period_containing(now)
        created = await repo.create_accounts_if_missing(
            session, user_ids, self.default_plan, period_start, period_end
        )
        existing = [user_id for user_id in user_ids if user_id not in created]
        if existing:
            await repo.start_periods_if_ended(session, existing, now, period_start, period_end)

    async def open_registered_account(
        self, session: AsyncSession, events: list[users_events.UserRegistered]
    ) -> None:
        """The UserRegistered batch handler: every new user starts on the default plan."""
        user_ids: list[uuid.UUID] = []
        for event in events:
            try:
                user_ids.append(parse_uuid(event.user_id, "user_id"))
            except InvalidArgument:
                log.error(
                    "user-registered event %s dropped: user_id %r is not a UUID",
                    event.event_id,
                    event.user_id,
                )
        deleted = await users_deleted(session, user_ids)
        if deleted:
            log.info("user-registered events of %d deleted users dropped", len(deleted))
        user_ids = [user_id for user_id in user_ids if user_id not in deleted]
        if user_ids:
            await self._current_accounts(session, user_ids, utcnow())

    async def due_reservations(
        self, session: AsyncSession, now: dt.datetime, limit: int
    ) -> list[uuid.UUID]:
        """Up to `limit` reservations past their expiry still waiting for their
        usage: the expiry worker asks generation about them."""
        return await repo.due_reservation_ids(session, now, limit)

    async def expire_reservations(
        self, session: AsyncSession, ids: list[uuid.UUID], now: dt.datetime
    ) -> int:
        """The safety net: give back what these reservations (past their
        expiry, and unknown to generation: no call was ever made under them)
        still hold; return how many. Their events, should any come after all,
        are still applied once (billed, counted)."""
        expired = await repo.expire_reservations(session, ids, now)
        generations: defaultdict[uuid.UUID, int] = defaultdict(int)
        costs: defaultdict[uuid.UUID, Decimal] = defaultdict(Decimal)
        for reservation in expired:
            log.error(
                "reservation %s of user %s expired unsettled: generation never started a call "
                "under it; its quota is given back",
                reservation.id,
                reservation.user_id,
            )
            RESERVATIONS_EXPIRED.inc()
            generations[reservation.user_id] += reservation.generations
            costs[reservation.user_id] += reservation.estimated_cost_usd
        for user_id in sorted(generations):  # the repository's lock order
            await repo.adjust_counters(
                session,
                user_id,
                generations_reserved=-generations[user_id],
                cost_reserved_usd=-costs[user_id],
            )
        return len(expired)

    async def postpone_expiry(
        self, session: AsyncSession, ids: list[uuid.UUID], now: dt.datetime
    ) -> None:
        """Keep these reservations (their calls were made: usage will come)
        and look at them again one reservation lifetime from now."""
        await repo.postpone_expiry(session, ids, now + self.reservation_ttl)


def _finish(reservation: LockedReservation, counted: bool, now: dt.datetime) -> None:
    """The status of a reservation whose cost and count are both settled (a
    cost-only one is settled once its cost is: it holds no count)."""
    settled = counted or reservation.cost_only
    reservation.status = ReservationStatus.settled if settled else ReservationStatus.released
    reservation.settled_at = now


@dataclass
class _Settlement:
    """What a batch of events changes, decided in memory event after event
    (so events of the same batch see each other's effects), then written
    set-based by BillingService._save."""

    now: dt.datetime
    # Locked, and changed in memory only: written back by _save.
    reservations: dict[uuid.UUID, LockedReservation]
    changed: set[uuid.UUID] = field(default_factory=set)
    ledgered: set[str] = field(default_factory=set)  # event ids in the ledger, or going in
    ledger: list[repo.LedgerEntry] = field(default_factory=list)
    deltas: dict[uuid.UUID, repo.CounterDeltas] = field(default_factory=dict)
    # (user id, generation id) -> whether its ledger entries counted.
    counted_marks: dict[tuple[uuid.UUID, str], bool] = field(default_factory=dict)

    def reservation(
        self, reservation_id: uuid.UUID | None, user_id: uuid.UUID
    ) -> LockedReservation | None:
        """The reservation an event names; None when it names none, or
        another user's."""
        reservation = self.reservations.get(reservation_id) if reservation_id else None
        return reservation if reservation is not None and reservation.user_id == user_id else None

    def adjust(self, user_id: uuid.UUID, **deltas) -> None:
        self.deltas.setdefault(user_id, repo.CounterDeltas()).add(repo.CounterDeltas(**deltas))


def _ledger_entry(
    event: generation_events.UsageRecorded,
    user_id: uuid.UUID | None,
    reservation_id: uuid.UUID | None,
    cost: Decimal,
    counted: bool,
    now: dt.datetime,
) -> repo.LedgerEntry:
    subject_kind, subject_id = usage_subject(event)
    return repo.LedgerEntry(
        event_id=event.event_id,
        user_id=user_id,
        reservation_id=reservation_id,
        generation_id=event.generation_id,
        purpose=purpose_name(event.purpose),
        subject_kind=subject_kind,
        subject_id=subject_id,
        attributes=dict(event.attributes),
        model=event.model,
        provider=event.provider,
        prompt_tokens=event.prompt_tokens,
        completion_tokens=event.completion_tokens,
        usage_estimated=event.usage_estimated,
        cost_usd=cost,
        outcome=outcome_name(event.outcome),
        counted=counted,
        occurred_at=event.occurred_at.ToDatetime(dt.UTC) if event.HasField("occurred_at") else now,
        recorded_at=now,
    )


def optional_uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None
