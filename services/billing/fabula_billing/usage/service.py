"""Billing rules: plans, monthly periods, reservations and settlement.

Every method takes the caller's session and never commits: the edge (the
servicer, a consumer, the expiry worker) owns the transaction.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from fabula.generation.v1 import events_pb2 as generation_events
from fabula.generation.v1 import generation_pb2
from fabula.users.v1 import events_pb2 as users_events
from fabula_common.db import utcnow
from fabula_common.errors import FabulaError, InvalidArgument, NotFound, QuotaExceeded
from fabula_common.money import format_usd, from_money, parse_usd
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_billing.settings import Plan, Settings
from fabula_billing.usage import repository as repo
from fabula_billing.usage.models import Account, ReservationStatus

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
        """Make sure the user has an account and that it is in the period of `now`."""
        period_start, period_end = period_containing(now)
        created = await repo.create_account_if_missing(
            session, user_id, self.default_plan, period_start, period_end
        )
        if not created:
            await repo.start_period_if_ended(session, user_id, now, period_start, period_end)

    async def open_account(self, session: AsyncSession, user_id: uuid.UUID) -> None:
        await self._current_account(session, user_id, utcnow())

    async def reserve_generation(
        self, session: AsyncSession, user_id: uuid.UUID, estimated_cost_usd: Decimal | None
    ) -> GrantedReservation:
        """Hold one generation and its estimated cost against the user's plan;
        QuotaExceeded when that would go over a limit of the plan."""
        estimate = self.default_estimate_usd if estimated_cost_usd is None else estimated_cost_usd
        now = utcnow()
        await self._current_account(session, user_id, now)
        plan_name = await repo.get_plan_name(session, user_id)
        assert plan_name is not None  # created above, and accounts are never deleted
        plan = self.plan(plan_name)
        granted = await repo.reserve_within_limits(
            session, user_id, plan_name, estimate, plan.generations_limit, plan.cost_limit_usd
        )
        if not granted:
            account = await repo.get_account(session, user_id)
            assert account is not None
            raise QuotaExceeded(self._refusal(account, plan, estimate))
        reservation = GrantedReservation(uuid.uuid4(), now + self.reservation_ttl)
        await repo.insert_reservation(
            session, reservation.reservation_id, user_id, estimate, reservation.expires_at
        )
        return reservation

    @staticmethod
    def _refusal(account: Account, plan: Plan, estimate: Decimal) -> str:
        generations_taken = account.generations_used + account.generations_reserved
        if plan.generations_limit is not None and generations_taken + 1 > plan.generations_limit:
            return (
                f"monthly generation quota exceeded: the {account.plan} plan allows "
                f"{plan.generations_limit} generations per month "
                f"({account.generations_used} used, {account.generations_reserved} in progress)"
            )
        return (
            f"monthly cost quota exceeded: the {account.plan} plan allows "
            f"${format_usd(plan.cost_limit_usd or Decimal(0))} per month "
            f"(${format_usd(account.cost_used_usd)} used, "
            f"${format_usd(account.cost_reserved_usd)} in progress, "
            f"${format_usd(estimate)} requested)"
        )

    async def release_reservation(
        self, session: AsyncSession, user_id: uuid.UUID, reservation_id: uuid.UUID
    ) -> bool:
        """Give a reservation's quota back; False when it no longer held any
        (already released, expired or settled). NotFound for a reservation
        that is not the user's."""
        estimate = await repo.release_if_reserved(session, reservation_id, user_id)
        if estimate is None:
            if not await repo.reservation_exists(session, reservation_id, user_id):
                raise NotFound("reservation not found")
            return False
        await repo.adjust_counters(
            session, user_id, generations_reserved=-1, cost_reserved_usd=-estimate
        )
        return True

    async def get_usage(self, session: AsyncSession, user_id: uuid.UUID) -> Usage:
        await self._current_account(session, user_id, utcnow())
        account = await repo.get_account(session, user_id)
        assert account is not None
        return Usage(
            plan_name=account.plan,
            plan=self.plan(account.plan),
            period_start=account.period_start,
            period_end=account.period_end,
            generations_used=account.generations_used,
            generations_reserved=account.generations_reserved,
            cost_used_usd=account.cost_used_usd,
        )

    async def settle_usage(
        self, session: AsyncSession, event: generation_events.UsageRecorded
    ) -> None:
        """Apply a model call's real usage (the UsageRecorded handler).

        Usage is counted whatever became of its reservation (an expired or
        released one still gets billed); a call that failed before producing
        anything gives its reservation back instead.
        """
        try:
            user_id = parse_uuid(event.user_id, "user_id")
            cost = usage_cost(event)
        except InvalidArgument as exc:
            # No retry can make this event usable: raising would only get it
            # redelivered forever.
            log.error("usage event %s dropped: %s", event.event_id, exc.message)
            return
        reservation_id = _optional_uuid(event.reservation_id)
        now = utcnow()

        reservation = None
        if reservation_id is not None:
            reservation = await repo.lock_reservation(session, reservation_id, user_id)
            if reservation is None:
                log.warning(
                    "usage event %s names reservation %s unknown for user %s; counting it anyway",
                    event.event_id,
                    reservation_id,
                    user_id,
                )
        if reservation is not None and reservation.status == ReservationStatus.settled:
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

        # One completed model call is one generation. A failed or cancelled
        # call produced nothing usable: its reservation is released, though
        # the tokens it did consume are still paid for.
        completed = event.outcome in (
            generation_events.GENERATION_OUTCOME_COMPLETED,
            generation_events.GENERATION_OUTCOME_UNSPECIFIED,
        )
        subject_kind, subject_id = usage_subject(event)
        recorded = await repo.add_ledger_entry(
            session,
            repo.LedgerEntry(
                event_id=event.event_id,
                user_id=user_id,
                reservation_id=reservation_id,
                generation_id=event.generation_id,
                purpose=purpose_name(event.purpose),
                subject_kind=subject_kind,
                subject_id=subject_id,
                model=event.model,
                provider=event.provider,
                prompt_tokens=event.prompt_tokens,
                completion_tokens=event.completion_tokens,
                usage_estimated=event.usage_estimated,
                cost_usd=cost,
                outcome=outcome_name(event.outcome),
                counted=completed,
                occurred_at=(
                    event.occurred_at.ToDatetime(dt.UTC) if event.HasField("occurred_at") else now
                ),
            ),
        )
        if not recorded:
            return  # already in the ledger: applied before

        holds_quota = reservation is not None and reservation.status == ReservationStatus.reserved
        await self._current_account(session, user_id, now)
        await repo.adjust_counters(
            session,
            user_id,
            generations_used=1 if completed else 0,
            cost_used_usd=cost,
            generations_reserved=-1 if holds_quota else 0,
            cost_reserved_usd=-reservation.estimated_cost_usd if holds_quota else Decimal(0),
        )
        if reservation is None:
            return
        if completed:
            await repo.mark_settled(session, reservation.id, cost, event.generation_id, now)
        elif holds_quota:
            await repo.mark_released(session, reservation.id)

    async def open_registered_account(
        self, session: AsyncSession, event: users_events.UserRegistered
    ) -> None:
        """The UserRegistered handler: every new user starts on the default plan."""
        try:
            user_id = parse_uuid(event.user_id, "user_id")
        except InvalidArgument:
            log.error(
                "user-registered event %s dropped: user_id %r is not a UUID",
                event.event_id,
                event.user_id,
            )
            return
        await self.open_account(session, user_id)

    async def expire_reservations(self, session: AsyncSession, now: dt.datetime, limit: int) -> int:
        """Give back the quota of up to `limit` reservations past their expiry;
        return how many."""
        expired = await repo.expire_due_reservations(session, now, limit)
        generations: defaultdict[uuid.UUID, int] = defaultdict(int)
        costs: defaultdict[uuid.UUID, Decimal] = defaultdict(Decimal)
        for reservation in expired:
            generations[reservation.user_id] += 1
            costs[reservation.user_id] += reservation.estimated_cost_usd
        for user_id in sorted(generations):  # the repository's lock order
            await repo.adjust_counters(
                session,
                user_id,
                generations_reserved=-generations[user_id],
                cost_reserved_usd=-costs[user_id],
            )
        return len(expired)


def _optional_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None
