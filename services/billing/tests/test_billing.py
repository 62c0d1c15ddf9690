"""The billing service over real gRPC, Postgres and NATS JetStream."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal

import asyncpg
import grpc
import nats
import pytest
from fabula.billing.v1 import billing_pb2, billing_pb2_grpc
from fabula.common.v1.money_pb2 import Money
from fabula.generation.v1 import generation_pb2, generation_pb2_grpc
from fabula.generation.v1 import events_pb2 as generation_events
from fabula.stories.v1 import events_pb2 as stories_events
from fabula.users.v1 import events_pb2 as users_events
from fabula_billing.app import create_app
from fabula_billing.database import processed_events
from fabula_billing.settings import Settings
from fabula_billing.usage.models import Account, Reservation, UsageLedgerEntry
from fabula_billing.usage.service import BillingService, outcome_name
from fabula_billing.usage.servicer import BillingServicer
from fabula_billing.usage.tasks import GenerationRecords, ReservationExpiryWorker
from fabula_common.db import Database, utcnow
from fabula_common.errors import error_details, error_reason
from fabula_common.grpc_client import open_channel
from fabula_common.messaging.bus import subject_for
from fabula_common.messaging.headers import MSG_ID_HEADER
from fabula_common.money import format_usd, from_money, to_money
from fabula_common.testing import RolledBackDatabase, free_port, rolled_back_session, running_app
from fabula_generation.app import create_app as create_generation_app
from fabula_generation.generations import repository as generation_repository
from fabula_generation.generations.models import Generation
from fabula_generation.settings import Settings as GenerationSettings
from google.protobuf.message import Message
from nats.js import JetStreamContext
from nats.js.errors import NoStreamResponseError
from sqlalchemy import select, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

Stub = billing_pb2_grpc.BillingServiceStub


@pytest.fixture(scope="module")
async def generation_addr(test_database, test_stream) -> AsyncIterator[str]:
    """The real generation service: the expiry worker asks its record."""
    settings = GenerationSettings(grpc_port=free_port(), provider="offline")
    async with running_app(create_generation_app(settings)) as address:
        yield address


@pytest.fixture(scope="module")
async def settings(generation_addr: str) -> Settings:
    # A short sweep so the expiry test need not wait 30 seconds.
    return Settings(
        grpc_port=free_port(), reservation_sweep_seconds=0.2, generation_addr=generation_addr
    )


@pytest.fixture(scope="module")
async def billing(settings: Settings) -> AsyncIterator[Stub]:
    async with (
        running_app(create_app(settings)) as address,
        grpc.aio.insecure_channel(address) as channel,
    ):
        yield Stub(channel)


@pytest.fixture(scope="module")
async def db(settings: Settings) -> AsyncIterator[Database]:
    """Direct access to billing's tables, to look behind the API or move time."""
    database = Database(settings)
    yield database
    await database.dispose()


@pytest.fixture
async def session(db: Database) -> AsyncIterator[AsyncSession]:
    """For calling billing's code in-process: every change is undone after the test."""
    async with rolled_back_session(db) as session:
        yield session


@pytest.fixture(scope="module")
async def js(test_stream) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(os.environ["NATS_URL"], connect_timeout=2)
    yield nc.jetstream()
    await nc.close()


async def publish(
    js: JetStreamContext, subject: str, message: Message, msg_id: str | None = None
) -> None:
    """Publish as an outbox relay would. The stream appears once the app's
    consumers have connected, so wait for it briefly."""
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        try:
            await js.publish(
                subject,
                message.SerializeToString(),
                headers={MSG_ID_HEADER: msg_id or uuid.uuid4().hex},
            )
            return
        except NoStreamResponseError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.05)


def new_user() -> str:
    return str(uuid.uuid4())


def usd(amount: str) -> Money:
    return to_money(Decimal(amount))


def dollars(money: Money) -> str:
    """A Money as the decimal string the public API shows."""
    return format_usd(from_money(money))


def usage_event(
    user_id: str, reservation_id: str = "", *, cost: str | Money = "0.0123", **fields
) -> generation_events.UsageRecorded:
    event = generation_events.UsageRecorded(
        event_id=str(uuid.uuid4()),
        generation_id=str(uuid.uuid4()),
        user_id=user_id,
        purpose=generation_pb2.PURPOSE_STORY_CONTINUATION,
        subject=generation_pb2.SubjectRef(kind="story", id=str(uuid.uuid4())),
        reservation_id=reservation_id,
        provider="fake",
        model="fake-1",
        prompt_tokens=120,
        completion_tokens=80,
        cost=usd(cost) if isinstance(cost, str) else cost,
        outcome=generation_events.GENERATION_OUTCOME_COMPLETED,
    )
    event.occurred_at.FromDatetime(utcnow())
    for name, value in fields.items():
        setattr(event, name, value)
    return event


def usage_subject(settings: Settings) -> str:
    return subject_for(settings, "generation", "usage_recorded")


async def reserve(
    billing: Stub, user_id: str, estimate: str | Money | None = None
) -> billing_pb2.Reservation:
    if isinstance(estimate, str):
        estimate = usd(estimate)
    return await billing.ReserveGeneration(
        billing_pb2.ReserveGenerationRequest(user_id=user_id, estimated_cost=estimate)
    )


async def usage(billing: Stub, user_id: str) -> billing_pb2.UsageSummary:
    return await billing.GetUsage(billing_pb2.GetUsageRequest(user_id=user_id))


async def reservation_status(db: Database, reservation_id: str) -> str | None:
    async with db.session_scope() as session:
        return await session.scalar(
            select(Reservation.status).where(Reservation.id == uuid.UUID(reservation_id))
        )


def current_month() -> tuple[dt.datetime, dt.datetime]:
    start = utcnow().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    return start, end


async def test_a_new_user_is_on_the_free_plan_for_the_current_month(billing: Stub):
    summary = await usage(billing, new_user())

    assert summary.plan == "free"
    assert summary.generations_limit == 5
    assert dollars(summary.cost_limit) == "10"
    assert (summary.generations_used, summary.generations_reserved) == (0, 0)
    assert dollars(summary.cost_used) == "0"
    # Also as the decimal strings callers of the previous release read.
    assert (summary.cost_used_usd, summary.cost_limit_usd) == ("0", "10")
    start, end = current_month()
    assert summary.period_start.ToDatetime(dt.UTC) == start
    assert summary.period_end.ToDatetime(dt.UTC) == end


async def test_the_sixth_generation_on_the_free_plan_is_refused(billing: Stub):
    user_id = new_user()
    reservations = [await reserve(billing, user_id) for _ in range(5)]

    assert len({r.reservation_id for r in reservations}) == 5
    expires_at = reservations[0].expires_at.ToDatetime(dt.UTC)
    # Held until its events settle it; the expiry is only a safety net: after
    # 15 minutes it asks generation whether a call was made under it.
    assert dt.timedelta(seconds=890) < expires_at - utcnow() <= dt.timedelta(seconds=900)
    assert (await usage(billing, user_id)).generations_reserved == 5

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await reserve(billing, user_id)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_reason(refused.value) == "quota-exceeded"
    assert "generation quota exceeded" in refused.value.details()
    assert "free plan" in refused.value.details()


async def test_the_cost_limit_counts_estimates_and_applies_the_default_estimate(billing: Stub):
    user_id = new_user()
    await reserve(billing, user_id, "9.99")
    await reserve(billing, user_id)  # the default estimate, $0.01: exactly at the $10 limit

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await reserve(billing, user_id, "0.000000001")
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_reason(refused.value) == "quota-exceeded"
    assert "cost quota exceeded" in refused.value.details()
    assert "$10 per month" in refused.value.details()


async def test_an_estimate_of_the_previous_release_is_read_as_a_decimal_string(billing: Stub):
    user_id = new_user()
    await billing.ReserveGeneration(
        billing_pb2.ReserveGenerationRequest(user_id=user_id, estimated_cost_usd="9.995")
    )

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await reserve(billing, user_id)  # the default $0.01 no longer fits under $10
    assert "$9.995 in progress" in refused.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await billing.ReserveGeneration(
            billing_pb2.ReserveGenerationRequest(user_id=user_id, estimated_cost_usd="ten")
        )
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "estimated_cost_usd" in invalid.value.details()


async def test_concurrent_reservations_never_exceed_the_quota(billing: Stub):
    user_id = new_user()

    results = await asyncio.gather(
        *(reserve(billing, user_id) for _ in range(30)), return_exceptions=True
    )

    granted = [r for r in results if isinstance(r, billing_pb2.Reservation)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(granted) == 5
    assert len(refused) == 25
    assert {e.code() for e in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert (await usage(billing, user_id)).generations_reserved == 5


async def test_a_steady_load_above_the_pool_reuses_its_connections(
    billing: Stub, settings: Settings, admin_url: str, test_database: str
):
    """Reserving 300 at a time, far more than the pool holds, waits for the
    pool's connections instead of opening and closing others (each a new
    Postgres backend, on the hot path)."""

    async def burst() -> None:
        # Users of its own: within every plan's quota.
        users = [new_user() for _ in range(150)]
        await asyncio.gather(*(reserve(billing, user) for user in users * 2))

    admin = await asyncpg.connect(admin_url)
    backends = "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND usename = $2"
    role = make_url(settings.database_url).username

    async def pids() -> set[int]:
        return {row["pid"] for row in await admin.fetch(backends, test_database, role)}

    try:
        before = await pids()  # other connections of the role, and the pool's so far
        seen: set[int] = set()
        for _ in range(4):
            await burst()
            seen |= await pids()
    finally:
        await admin.close()

    # The pool grows to its size as the load needs it, then keeps those
    # connections: never more new backends than it holds (closing and
    # reopening overflow connections made new ones at every burst).
    assert len(seen - before) <= settings.db_pool_size


async def test_releasing_gives_the_quota_back_once(billing: Stub):
    user_id = new_user()
    reservations = [await reserve(billing, user_id) for _ in range(5)]
    release = billing_pb2.ReleaseReservationRequest(
        user_id=user_id, reservation_id=reservations[0].reservation_id
    )

    assert (await billing.ReleaseReservation(release)).released is True
    assert (await billing.ReleaseReservation(release)).released is False
    assert (await usage(billing, user_id)).generations_reserved == 4

    await reserve(billing, user_id)  # the released one is available again, once
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await reserve(billing, user_id)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_another_users_or_an_unknown_reservation_is_not_found(billing: Stub):
    owner, other = new_user(), new_user()
    reservation = await reserve(billing, owner)

    for user_id, reservation_id in (
        (other, reservation.reservation_id),
        (owner, str(uuid.uuid4())),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await billing.ReleaseReservation(
                billing_pb2.ReleaseReservationRequest(
                    user_id=user_id, reservation_id=reservation_id
                )
            )
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert (await usage(billing, owner)).generations_reserved == 1


@pytest.mark.parametrize(
    ("user_id", "estimate"),
    [
        ("not-a-uuid", None),
        ("", None),
        # Fixed ids: test ids must be the same in every pytest-xdist worker.
        ("0b1c5e2a-54f4-4c39-9b7e-8f0f1b6c2d01", Money(currency_code="EUR", units=1)),
        ("0b1c5e2a-54f4-4c39-9b7e-8f0f1b6c2d02", Money(units=1)),
        ("0b1c5e2a-54f4-4c39-9b7e-8f0f1b6c2d03", Money(currency_code="USD", units=-1)),
        ("0b1c5e2a-54f4-4c39-9b7e-8f0f1b6c2d04", Money(currency_code="USD", nanos=1_000_000_000)),
        # More than the ledger holds: refused, not a crash.
        ("0b1c5e2a-54f4-4c39-9b7e-8f0f1b6c2d05", Money(currency_code="USD", units=10**18)),
    ],
)
async def test_malformed_requests_are_invalid_arguments(
    billing: Stub, user_id: str, estimate: Money | None
):
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await reserve(billing, user_id, estimate)
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_get_usage_rejects_a_malformed_user_id(billing: Stub):
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await usage(billing, "42")
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_recorded_usage_settles_the_reservation_once(
    billing: Stub, settings: Settings, js: JetStreamContext, db: Database
):
    user_id = new_user()
    reservation = await reserve(billing, user_id, "0.5")
    event = usage_event(user_id, reservation.reservation_id, cost="0.0123")

    await publish(js, usage_subject(settings), event, msg_id=event.event_id)
    await eventually(lambda: _generations_used_is(billing, user_id, 1))

    summary = await usage(billing, user_id)
    assert summary.generations_reserved == 0
    assert dollars(summary.cost_used) == "0.0123"
    assert await reservation_status(db, reservation.reservation_id) == "settled"

    # The same event again, under a new message id so JetStream passes it on,
    # then a different one: once that is counted, the repeat has been handled.
    await publish(js, usage_subject(settings), event, msg_id=uuid.uuid4().hex)
    await publish(js, usage_subject(settings), usage_event(user_id, cost="0.001"))
    await eventually(lambda: _generations_used_is(billing, user_id, 2))

    summary = await usage(billing, user_id)
    assert dollars(summary.cost_used) == "0.0133"
    async with db.session_scope() as session:
        ledger = (
            await session.scalars(
                select(UsageLedgerEntry).where(UsageLedgerEntry.user_id == uuid.UUID(user_id))
            )
        ).all()
        settled = await session.get(Reservation, uuid.UUID(reservation.reservation_id))
    assert sorted(entry.cost_usd for entry in ledger) == [Decimal("0.001"), Decimal("0.0123")]
    # What each call was for and about, for usage logs.
    (first,) = [entry for entry in ledger if entry.event_id == event.event_id]
    assert (first.purpose, first.subject_kind, first.subject_id) == (
        "story_continuation",
        "story",
        event.subject.id,
    )
    assert settled.actual_cost_usd == Decimal("0.0123")
    assert settled.generation_id == event.generation_id


async def test_usage_recorded_by_the_previous_release_is_settled(
    billing: Stub, settings: Settings, js: JetStreamContext, db: Database
):
    """Events the previous release's generation service wrote (cost as a
    decimal string, the story's id, no Money, purpose or subject) may still
    wait in its outbox or the stream: they are billed, not dropped."""
    user_id, story_id = new_user(), str(uuid.uuid4())
    reservation = await reserve(billing, user_id, "0.5")
    legacy = generation_events.UsageRecorded(
        event_id=str(uuid.uuid4()),
        generation_id=str(uuid.uuid4()),
        user_id=user_id,
        story_id=story_id,
        reservation_id=reservation.reservation_id,
        provider="mistral",
        model="mistral-small-latest",
        prompt_tokens=300,
        completion_tokens=200,
        cost_usd="0.00042",
        outcome=generation_events.GENERATION_OUTCOME_COMPLETED,
    )
    legacy.occurred_at.FromDatetime(utcnow())

    await publish(js, usage_subject(settings), legacy)
    await eventually(lambda: _generations_used_is(billing, user_id, 1))

    summary = await usage(billing, user_id)
    assert summary.generations_reserved == 0
    assert (dollars(summary.cost_used), summary.cost_used_usd) == ("0.00042", "0.00042")
    assert await reservation_status(db, reservation.reservation_id) == "settled"
    async with db.session_scope() as session:
        entry = await session.scalar(
            select(UsageLedgerEntry).where(UsageLedgerEntry.event_id == legacy.event_id)
        )
    assert (entry.subject_kind, entry.subject_id) == ("story", story_id)
    assert (entry.cost_usd, entry.purpose) == (Decimal("0.00042"), "unspecified")


async def test_a_generation_reported_again_under_a_new_event_id_is_counted_once(
    billing: Stub, settings: Settings, js: JetStreamContext, db: Database
):
    user_id = new_user()
    reservation = await reserve(billing, user_id)
    first = usage_event(user_id, reservation.reservation_id, cost="0.02")
    await publish(js, usage_subject(settings), first)
    await eventually(lambda: _generations_used_is(billing, user_id, 1))

    repeat = usage_event(
        user_id, reservation.reservation_id, generation_id=first.generation_id, cost="0.02"
    )
    # A different model call under the already settled reservation is still billed.
    another_call = usage_event(user_id, reservation.reservation_id, cost="0.03")
    await publish(js, usage_subject(settings), repeat)
    await publish(js, usage_subject(settings), another_call)
    await eventually(lambda: _generations_used_is(billing, user_id, 2))

    summary = await usage(billing, user_id)
    assert (dollars(summary.cost_used), summary.generations_reserved) == ("0.05", 0)
    async with db.session_scope() as session:
        recorded = set(
            await session.scalars(
                select(UsageLedgerEntry.event_id).where(
                    UsageLedgerEntry.user_id == uuid.UUID(user_id)
                )
            )
        )
    assert recorded == {first.event_id, another_call.event_id}


async def test_usage_is_counted_even_after_its_reservation_was_released(
    billing: Stub, settings: Settings, js: JetStreamContext, db: Database
):
    user_id = new_user()
    reservation = await reserve(billing, user_id)
    await billing.ReleaseReservation(
        billing_pb2.ReleaseReservationRequest(
            user_id=user_id, reservation_id=reservation.reservation_id
        )
    )

    await publish(js, usage_subject(settings), usage_event(user_id, reservation.reservation_id))
    await eventually(lambda: _generations_used_is(billing, user_id, 1))

    summary = await usage(billing, user_id)
    assert summary.generations_reserved == 0
    assert dollars(summary.cost_used) == "0.0123"
    assert await reservation_status(db, reservation.reservation_id) == "settled"


async def test_usage_without_a_reservation_opens_the_account_and_counts(
    billing: Stub, settings: Settings, js: JetStreamContext
):
    user_id = new_user()  # never seen by billing before

    await publish(js, usage_subject(settings), usage_event(user_id, reservation_id=""))
    await eventually(lambda: _generations_used_is(billing, user_id, 1))

    summary = await usage(billing, user_id)
    assert (summary.plan, dollars(summary.cost_used)) == ("free", "0.0123")


async def test_a_call_that_failed_without_tokens_releases_instead_of_counting(
    billing: Stub, settings: Settings, js: JetStreamContext, db: Database
):
    user_id = new_user()
    reservation = await reserve(billing, user_id)
    failed = usage_event(
        user_id,
        reservation.reservation_id,
        outcome=generation_events.GENERATION_OUTCOME_FAILED,
        prompt_tokens=0,
        completion_tokens=0,
        cost="0",
    )

    await publish(js, usage_subject(settings), failed)

    async def released() -> bool:
        return await reservation_status(db, reservation.reservation_id) == "released"

    await eventually(released)
    summary = await usage(billing, user_id)
    assert (summary.generations_used, summary.generations_reserved) == (0, 0)
    assert dollars(summary.cost_used) == "0"


@pytest.mark.parametrize(
    "outcome", [generation_events.GENERATION_OUTCOME_CANCELLED, generation_events.GENERATION_OUTCOME_FAILED]
)
async def test_a_call_that_wrote_no_segment_releases_but_pays_its_tokens(
    billing: Stub, settings: Settings, js: JetStreamContext, db: Database, outcome
):
    user_id = new_user()
    reservation = await reserve(billing, user_id)
    await publish(
        js, usage_subject(settings), usage_event(user_id, reservation.reservation_id, outcome=outcome)
    )

    async def released() -> bool:
        return await reservation_status(db, reservation.reservation_id) == "released"

    await eventually(released)
    summary = await usage(billing, user_id)
    # No segment, so no generation; the tokens the model consumed are still cost.
    assert (summary.generations_used, summary.generations_reserved) == (0, 0)
    assert dollars(summary.cost_used) == "0.0123"


@pytest.mark.parametrize(
    "cost",
    [
        Money(currency_code="USD", units=10**18),
        # The previous release's decimal string, when no Money is set.
        "-0.5",
        "a dollar",
    ],
    ids=["money-too-large", "legacy-negative", "legacy-not-a-number"],
)
async def test_a_usage_event_with_an_unusable_cost_is_dropped_not_redelivered_forever(
    billing: Stub, settings: Settings, js: JetStreamContext, db: Database, cost: Money | str
):
    user_id = new_user()
    if isinstance(cost, Money):
        unusable = usage_event(user_id, cost=cost)
    else:
        unusable = usage_event(user_id, cost_usd=cost)
        unusable.ClearField("cost")
    await publish(js, usage_subject(settings), unusable)

    async def acknowledged() -> bool:
        async with db.session_scope() as session:
            return await session.scalar(
                select(processed_events.c.event_id).where(
                    processed_events.c.event_id == unusable.event_id
                )
            ) is not None

    await eventually(acknowledged)
    assert (await usage(billing, user_id)).generations_used == 0


async def test_user_registered_opens_a_free_account(
    billing: Stub, settings: Settings, js: JetStreamContext, db: Database
):
    user_id = new_user()
    registered = users_events.UserRegistered(
        event_id=str(uuid.uuid4()), user_id=user_id, email="reader@example.com"
    )

    await publish(js, subject_for(settings, "users", "user_registered"), registered)

    async def account_plan() -> str | None:
        async with db.session_scope() as session:
            return await session.scalar(
                select(Account.plan).where(Account.user_id == uuid.UUID(user_id))
            )

    await eventually(lambda: _is(account_plan(), "free"))


async def test_an_expired_reservation_gives_its_quota_back(billing: Stub, db: Database):
    user_id = new_user()
    reservation = await reserve(billing, user_id, "1.25")
    # As if its caller crashed 15 minutes ago, before calling generation.
    async with db.session_scope() as session:
        await session.execute(
            update(Reservation)
            .where(Reservation.id == uuid.UUID(reservation.reservation_id))
            .values(expires_at=utcnow() - dt.timedelta(seconds=1))
        )

    async def expired() -> bool:
        return await reservation_status(db, reservation.reservation_id) == "expired"

    await eventually(expired, timeout=5)
    assert (await usage(billing, user_id)).generations_reserved == 0
    async with db.session_scope() as session:
        account = await session.get(Account, uuid.UUID(user_id))
    assert account.cost_reserved_usd == 0
    released = await billing.ReleaseReservation(
        billing_pb2.ReleaseReservationRequest(
            user_id=user_id, reservation_id=reservation.reservation_id
        )
    )
    assert released.released is False


async def test_a_new_month_starts_with_fresh_usage(billing: Stub, db: Database):
    user_id = new_user()
    await reserve(billing, user_id)  # still outstanding when the month turns
    start, _ = current_month()
    last_month_start = (start - dt.timedelta(days=1)).replace(day=1)
    async with db.session_scope() as session:
        await session.execute(
            update(Account)
            .where(Account.user_id == uuid.UUID(user_id))
            .values(
                period_start=last_month_start,
                period_end=start,
                generations_used=4,
                cost_used_usd=Decimal("3.5"),
            )
        )

    summary = await usage(billing, user_id)

    assert summary.period_start.ToDatetime(dt.UTC) == start
    assert (summary.generations_used, dollars(summary.cost_used)) == (0, "0")
    assert summary.generations_reserved == 1
    for _ in range(4):  # 4 more fit beside the outstanding one
        await reserve(billing, user_id)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await reserve(billing, user_id)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_an_unlimited_plan_has_no_limits(settings: Settings, db: Database):
    enterprise = BillingService(settings.model_copy(update={"default_plan": "enterprise"}))
    servicer = BillingServicer(db, enterprise)
    user_id = new_user()

    for _ in range(8):
        await servicer.ReserveGeneration(
            billing_pb2.ReserveGenerationRequest(user_id=user_id, estimated_cost=to_money(Decimal(5))), None
        )
    summary = await servicer.GetUsage(billing_pb2.GetUsageRequest(user_id=user_id), None)

    assert summary.plan == "enterprise"
    assert not summary.HasField("generations_limit")
    assert not summary.HasField("cost_limit")
    assert not summary.HasField("cost_limit_usd")
    assert summary.generations_reserved == 8


async def _generations_used_is(billing: Stub, user_id: str, expected: int) -> bool:
    return (await usage(billing, user_id)).generations_used == expected


async def _is(value: Awaitable, expected) -> bool:
    return await value == expected


def test_a_reservation_cannot_expire_before_its_model_call_may_end():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="BILLING_RESERVATION_TTL_SECONDS"):
        Settings(reservation_ttl_seconds=60, generation_deadline_seconds=120)
    assert Settings(reservation_ttl_seconds=121, generation_deadline_seconds=120)


# --- Delivery confirmed by the subject's owner ------------------------------------


def delivered_subject(settings: Settings) -> str:
    return subject_for(settings, "stories", "generation_delivered")


def discarded_subject(settings: Settings) -> str:
    return subject_for(settings, "stories", "generation_discarded")


async def reserve_as_generation(billing: Stub, user_id: str) -> str:
    """Reserve as the generation service does: under the generation's id."""
    generation_id = str(uuid.uuid4())
    await billing.ReserveGeneration(
        billing_pb2.ReserveGenerationRequest(user_id=user_id, reservation_id=generation_id)
    )
    return generation_id


def confirmed_usage(user_id: str, generation_id: str, **fields) -> generation_events.UsageRecorded:
    return usage_event(
        user_id,
        generation_id,
        generation_id=generation_id,
        delivery=generation_pb2.DELIVERY_CONFIRMED_BY_OWNER,
        **fields,
    )


def delivered(user_id: str, generation_id: str) -> stories_events.GenerationDelivered:
    return stories_events.GenerationDelivered(
        event_id=str(uuid.uuid4()),
        generation_id=generation_id,
        user_id=user_id,
        story_id=str(uuid.uuid4()),
        segment_id=str(uuid.uuid4()),
    )


def discarded(user_id: str, generation_id: str) -> stories_events.GenerationDiscarded:
    return stories_events.GenerationDiscarded(
        event_id=str(uuid.uuid4()),
        generation_id=generation_id,
        user_id=user_id,
        story_id=str(uuid.uuid4()),
        reason="model-failed",
    )


async def publish_event(js: JetStreamContext, settings: Settings, event: Message) -> None:
    """Publish as the producer's outbox relay does (the event id as Nats-Msg-Id)."""
    subject = {
        generation_events.UsageRecorded: usage_subject(settings),
        stories_events.GenerationDelivered: delivered_subject(settings),
        stories_events.GenerationDiscarded: discarded_subject(settings),
    }[type(event)]
    await publish(js, subject, event, msg_id=event.event_id)


async def all_applied(db: Database, *events: Message) -> None:
    """Wait until billing's consumers have applied (or deliberately skipped) every event."""

    async def done() -> bool:
        async with db.session_scope() as session:
            found = set(
                await session.scalars(
                    select(processed_events.c.event_id).where(
                        processed_events.c.event_id.in_([e.event_id for e in events])
                    )
                )
            )
        return found == {e.event_id for e in events}

    await eventually(done)


async def state_of(billing: Stub, db: Database, user_id: str, generation_id: str):
    """(used, reserved, cost used, reservation status, ledger (outcome, counted) rows)."""
    summary = await usage(billing, user_id)
    async with db.session_scope() as session:
        ledger = (
            await session.execute(
                select(UsageLedgerEntry.outcome, UsageLedgerEntry.counted).where(
                    UsageLedgerEntry.generation_id == generation_id
                )
            )
        ).all()
        account = await session.get(Account, uuid.UUID(user_id))
    return (
        summary.generations_used,
        summary.generations_reserved,
        dollars(summary.cost_used),
        account.cost_reserved_usd,
        await reservation_status(db, generation_id),
        sorted(tuple(row) for row in ledger),
    )


@pytest.mark.parametrize("delivered_first", [False, True], ids=["usage-first", "delivered-first"])
async def test_a_delivered_generation_counts_once_in_either_order(
    billing: Stub, settings: Settings, js: JetStreamContext, db: Database, delivered_first: bool
):
    user_id = new_user()
    generation_id = await reserve_as_generation(billing, user_id)
    used = confirmed_usage(user_id, generation_id, cost="0.02")
    stored = delivered(user_id, generation_id)

    first, second = (stored, used) if delivered_first else (used, stored)
    await publish_event(js, settings, first)
    await all_applied(db, first)
    summary = await usage(billing, user_id)
    if delivered_first:  # counted; the cost is still held until its usage comes
        assert (summary.generations_used, summary.generations_reserved) == (1, 0)
    else:  # paid, but not counted until the owner says it was stored
        assert (summary.generations_used, summary.generations_reserved) == (0, 1)
        assert dollars(summary.cost_used) == "0.02"
    await publish_event(js, settings, second)
    await all_applied(db, second)

    expected = (1, 0, "0.02", Decimal(0), "settled", [("completed", True)])
    assert await state_of(billing, db, user_id, generation_id) == expected

    # Each event again (a relay's re-publish after a lost ack): nothing changes.
    repeats = [
        delivered(user_id, generation_id),
        confirmed_usage(user_id, generation_id, cost="0.02"),
    ]
    for repeat in repeats:
        await publish_event(js, settings, repeat)
    await all_applied(db, *repeats)
    assert await state_of(billing, db, user_id, generation_id) == expected


@pytest.mark.parametrize(
    ("outcome", "discarded_first"),
    [
        (generation_events.GENERATION_OUTCOME_COMPLETED, False),
        (generation_events.GENERATION_OUTCOME_COMPLETED, True),
        (generation_events.GENERATION_OUTCOME_FAILED, False),
        (generation_events.GENERATION_OUTCOME_FAILED, True),
    ],
    ids=["completed-usage-first", "completed-discarded-first", "failed-usage-first",
         "failed-discarded-first"],
)
async def test_a_discarded_generation_is_paid_but_never_counted(
    billing: Stub, settings: Settings, js: JetStreamContext, db: Database, outcome, discarded_first
):
    user_id = new_user()
    generation_id = await reserve_as_generation(billing, user_id)
    used = confirmed_usage(user_id, generation_id, cost="0.03", outcome=outcome)
    thrown_away = discarded(user_id, generation_id)

    for event in (thrown_away, used) if discarded_first else (used, thrown_away):
        await publish_event(js, settings, event)
        await all_applied(db, event)
    # Duplicates of each, and a delivery contradicting the discard: no change.
    late = [
        discarded(user_id, generation_id),
        confirmed_usage(user_id, generation_id, cost="0.03", outcome=outcome),
        delivered(user_id, generation_id),
    ]
    for event in late:
        await publish_event(js, settings, event)
    await all_applied(db, *late)

    # The tokens are paid; the ledger flags the entry as not counted.
    assert await state_of(billing, db, user_id, generation_id) == (
        0,
        0,
        "0.03",
        Decimal(0),
        "released",
        [(outcome_name(outcome), False)],
    )


async def test_reserving_the_same_id_again_holds_once(billing: Stub):
    user_id, reservation_id = new_user(), str(uuid.uuid4())
    request = billing_pb2.ReserveGenerationRequest(user_id=user_id, reservation_id=reservation_id)

    # A retry racing the first attempt, and one after it.
    answers = await asyncio.gather(*(billing.ReserveGeneration(request) for _ in range(5)))
    answers.append(await billing.ReserveGeneration(request))

    assert {answer.reservation_id for answer in answers} == {reservation_id}
    assert len({answer.expires_at.ToDatetime() for answer in answers}) == 1
    assert (await usage(billing, user_id)).generations_reserved == 1
    with pytest.raises(grpc.aio.AioRpcError) as taken:
        await billing.ReserveGeneration(
            billing_pb2.ReserveGenerationRequest(user_id=new_user(), reservation_id=reservation_id)
        )
    assert taken.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_a_reservation_made_after_its_usage_was_settled_holds_nothing(
    billing: Stub, settings: Settings, js: JetStreamContext, db: Database
):
    """The generation service gave up waiting for billing (deadline) and
    recorded the call as failed; billing commits the reservation only after
    the usage event: it must not hold quota nobody will release."""
    user_id, generation_id = new_user(), str(uuid.uuid4())
    failed = confirmed_usage(
        user_id,
        generation_id,
        cost="0",
        prompt_tokens=0,
        completion_tokens=0,
        outcome=generation_events.GENERATION_OUTCOME_FAILED,
    )
    await publish_event(js, settings, failed)
    await all_applied(db, failed)

    await billing.ReserveGeneration(
        billing_pb2.ReserveGenerationRequest(user_id=user_id, reservation_id=generation_id)
    )
    summary = await usage(billing, user_id)
    assert (summary.generations_used, summary.generations_reserved) == (0, 0)


async def test_a_long_outage_never_returns_quota_so_the_plan_holds(
    billing: Stub, settings: Settings, js: JetStreamContext, db: Database
):
    """Usage and delivery events wait in outboxes while NATS is down, longer
    than the old 15-minute expiry: the holds stay, no reservation beyond the
    plan is granted, and once the events arrive each call counts once."""
    user_id = new_user()
    generation_ids = [await reserve_as_generation(billing, user_id) for _ in range(5)]
    async with db.session_scope() as session:  # as if they were made 20 minutes ago
        await session.execute(
            update(Reservation)
            .where(Reservation.user_id == uuid.UUID(user_id))
            .values(created_at=utcnow() - dt.timedelta(minutes=20))
        )
    await asyncio.sleep(5 * settings.reservation_sweep_seconds)  # sweeps run meanwhile

    racing = await asyncio.gather(
        *(reserve_as_generation(billing, user_id) for _ in range(10)), return_exceptions=True
    )
    assert all(
        isinstance(r, grpc.aio.AioRpcError) and r.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        for r in racing
    ), racing
    assert {await reservation_status(db, g) for g in generation_ids} == {"reserved"}

    # NATS is back: the outboxes drain.
    events = [
        event
        for generation_id in generation_ids
        for event in (confirmed_usage(user_id, generation_id), delivered(user_id, generation_id))
    ]
    for event in events:
        await publish_event(js, settings, event)
    await all_applied(db, *events)

    summary = await usage(billing, user_id)
    assert (summary.generations_used, summary.generations_reserved) == (5, 0)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await reserve_as_generation(billing, user_id)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_events_after_the_safety_net_expiry_count_once(
    billing: Stub, settings: Settings, js: JetStreamContext, db: Database
):
    user_id = new_user()
    generation_id = await reserve_as_generation(billing, user_id)
    # Generation never heard of it (e.g. it lost its records), 15 minutes ago.
    async with db.session_scope() as session:
        await session.execute(
            update(Reservation)
            .where(Reservation.id == uuid.UUID(generation_id))
            .values(expires_at=utcnow() - dt.timedelta(seconds=1))
        )

    async def expired() -> bool:
        return await reservation_status(db, generation_id) == "expired"

    await eventually(expired, timeout=5)
    assert (await usage(billing, user_id)).generations_reserved == 0

    # Each event twice: the late ones are applied once.
    events = [
        event
        for _ in range(2)
        for event in (
            confirmed_usage(user_id, generation_id, cost="0.04"),
            delivered(user_id, generation_id),
        )
    ]
    for event in events:
        await publish_event(js, settings, event)
    await all_applied(db, *events)

    used, reserved, cost, cost_reserved, _, ledger = await state_of(
        billing, db, user_id, generation_id
    )
    assert (used, reserved, cost, cost_reserved, ledger) == (
        1,
        0,
        "0.04",
        Decimal(0),
        [("completed", True)],
    )


# --- The safety-net expiry asks generation's record --------------------------------


async def record_in_generation(generation_id: str, user_id: str, outcome: str) -> None:
    """A generation in generation's own database, as a call under this id
    leaves it: still started (another pod serves it), or finished."""
    database = Database(GenerationSettings())
    try:
        async with database.session_scope() as session:
            await generation_repository.add_started_generation(
                session,
                dict(
                    id=uuid.UUID(generation_id),
                    user_id=user_id,
                    purpose="story_continuation",
                    subject_kind="story",
                    subject_id=str(uuid.uuid4()),
                    reservation_id=generation_id,
                    provider="offline",
                    model="offline",
                    prompt_tokens=10,
                    completion_tokens=0,
                    usage_estimated=True,
                    cost_usd=Decimal(0),
                    duration_ms=0,
                    delivery="confirmed_by_owner",
                    owner="another-pod",
                    error=None,
                    created_at=utcnow(),
                ),
            )
            await session.execute(
                update(Generation)
                .where(Generation.id == uuid.UUID(generation_id))
                .values(outcome=outcome)
            )
    finally:
        await database.dispose()


async def make_due(db: Database, *reservation_ids: str) -> None:
    """Move the reservations' expiry into the past, as if their TTL had passed."""
    async with db.session_scope() as session:
        await session.execute(
            update(Reservation)
            .where(Reservation.id.in_([uuid.UUID(r) for r in reservation_ids]))
            .values(expires_at=utcnow() - dt.timedelta(seconds=1))
        )


async def expires_at(db: Database, reservation_id: str) -> dt.datetime:
    async with db.session_scope() as session:
        return await session.scalar(
            select(Reservation.expires_at).where(Reservation.id == uuid.UUID(reservation_id))
        )


async def test_expiry_gives_back_only_what_generation_never_started(
    billing: Stub, settings: Settings, db: Database
):
    """Past their TTL, the reservation of a call still running and that of a
    finished call whose usage event waits (NATS down) keep their holds; only
    the one no call was made under is given back."""
    user_id = new_user()
    running, finished, orphaned = [await reserve_as_generation(billing, user_id) for _ in range(3)]
    await record_in_generation(running, user_id, "started")
    await record_in_generation(finished, user_id, "completed")

    await make_due(db, running, finished, orphaned)
    await eventually(lambda: _is(reservation_status(db, orphaned), "expired"), timeout=5)

    assert (await usage(billing, user_id)).generations_reserved == 2
    for kept in (running, finished):
        assert await reservation_status(db, kept) == "reserved"
        # Looked at again a TTL from now, not at every sweep.
        assert await expires_at(db, kept) > utcnow() + dt.timedelta(
            seconds=settings.reservation_ttl_seconds - 60
        )
    async with db.session_scope() as session:
        account = await session.get(Account, uuid.UUID(user_id))
    assert account.cost_reserved_usd == 2 * settings.default_generation_estimate_usd


async def test_with_generation_unreachable_expiry_gives_nothing_back(
    session: AsyncSession, settings: Settings, db: Database
):
    service = BillingService(settings)
    user_id, reservation_id = uuid.uuid4(), uuid.uuid4()
    autocommit = db.engine.execution_options(isolation_level="AUTOCOMMIT")
    await service.reserve_generation(autocommit, user_id, None, reservation_id)
    await session.execute(
        update(Reservation)
        .where(Reservation.id == reservation_id)
        .values(expires_at=utcnow() - dt.timedelta(seconds=1))
    )
    nobody = open_channel(f"127.0.0.1:{free_port()}", 2.0)
    worker = ReservationExpiryWorker(
        RolledBackDatabase(session),
        service,
        GenerationRecords(generation_pb2_grpc.GenerationServiceStub(nobody)),
        interval_seconds=0.1,
    )
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await worker.expire_due()
    finally:
        await nobody.close()

    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    reservation = await session.get(Reservation, reservation_id, populate_existing=True)
    assert reservation.status == "reserved"
    account = await session.get(Account, user_id, populate_existing=True)
    assert account.generations_reserved == 1


async def test_a_settled_usage_keeps_its_count_held_until_the_owner_decides(
    billing: Stub, settings: Settings, js: JetStreamContext, db: Database
):
    """Owner-confirmed: once its usage is paid, only stories' delivered or
    discarded event releases the count, however long past the TTL."""
    user_id = new_user()
    generation_id = await reserve_as_generation(billing, user_id)
    used = confirmed_usage(user_id, generation_id, cost="0.01")
    await publish_event(js, settings, used)
    await all_applied(db, used)

    await make_due(db, generation_id)
    await asyncio.sleep(10 * settings.reservation_sweep_seconds)
    assert await reservation_status(db, generation_id) == "reserved"
    assert (await usage(billing, user_id)).generations_reserved == 1

    thrown_away = discarded(user_id, generation_id)
    await publish_event(js, settings, thrown_away)
    await all_applied(db, thrown_away)
    assert await state_of(billing, db, user_id, generation_id) == (
        0,
        0,
        "0.01",
        Decimal(0),
        "released",
        [("completed", False)],
    )


async def test_a_burst_of_usage_is_settled_exactly_once_whatever_the_batches(
    billing: Stub, settings: Settings, js: JetStreamContext, db: Database
):
    """Events published faster than they are consumed arrive in batches of
    many: each still settles its own reservation once, a repeat inside the
    burst (the same event, the same model call under a new event id) changes
    nothing, and a malformed event is dropped without holding up the rest."""
    users = [new_user() for _ in range(3)]
    reservations = {user: [await reserve(billing, user, "0.01") for _ in range(4)] for user in users}
    events = [
        usage_event(user, reservation.reservation_id, cost="0.002")
        for user in users
        for reservation in reservations[user]
    ]
    repeat_call = usage_event(
        users[0], reservations[users[0]][0].reservation_id,
        generation_id=events[0].generation_id, cost="0.002",
    )
    malformed = usage_event("not-a-uuid", cost="0.002")
    burst = [*events[:6], events[0], repeat_call, malformed, *events[6:], events[3]]
    acks = [
        await js.publish_async(usage_subject(settings), event.SerializeToString(),
                               headers={MSG_ID_HEADER: uuid.uuid4().hex})
        for event in burst
    ]
    await asyncio.gather(*acks)

    async def all_settled() -> bool:
        return all([await _generations_used_is(billing, user, 4) for user in users])

    await eventually(all_settled)
    for user in users:
        summary = await usage(billing, user)
        assert (summary.generations_used, summary.generations_reserved) == (4, 0)
        assert dollars(summary.cost_used) == "0.008"
        for reservation in reservations[user]:
            assert await reservation_status(db, reservation.reservation_id) == "settled"
    async with db.session_scope() as session:
        recorded = list(
            await session.scalars(
                select(UsageLedgerEntry.event_id).where(
                    UsageLedgerEntry.user_id.in_([uuid.UUID(user) for user in users])
                )
            )
        )
    assert sorted(recorded) == sorted(event.event_id for event in events)


# --- Cost-only reservations (calls metered as cost only: story suggestions) ---------


async def reserve_cost_only(
    billing: Stub, user_id: str, estimate: str, reservation_id: str = ""
) -> billing_pb2.Reservation:
    return await billing.ReserveGeneration(
        billing_pb2.ReserveGenerationRequest(
            user_id=user_id,
            reservation_id=reservation_id,
            estimated_cost=usd(estimate),
            cost_only=True,
        )
    )


async def held(db: Database, user_id: str) -> tuple[int, Decimal]:
    """(generations_reserved, cost_reserved_usd) of the account."""
    async with db.session_scope() as session:
        account = await session.get(Account, uuid.UUID(user_id))
    return account.generations_reserved, account.cost_reserved_usd


def suggestion_usage(user_id: str, reservation_id: str, cost: str) -> generation_events.UsageRecorded:
    """The usage of a suggestions call, as generation records it."""
    event = usage_event(
        user_id,
        reservation_id,
        generation_id=reservation_id,
        purpose=generation_pb2.PURPOSE_STORY_SUGGESTIONS,
        cost=cost,
    )
    event.subject.CopyFrom(generation_pb2.SubjectRef(kind="user", id=user_id))
    return event


async def test_a_cost_only_reservation_holds_its_cost_and_no_generation(
    billing: Stub, db: Database
):
    user_id = new_user()
    # Every generation of the free plan taken: cost-only reservations still fit.
    for _ in range(5):
        await reserve(billing, user_id, "1")
    first = await reserve_cost_only(billing, user_id, "2.5")
    await reserve_cost_only(billing, user_id, "2.5")

    assert await held(db, user_id) == (5, Decimal("10"))
    async with db.session_scope() as session:
        reservation = await session.get(Reservation, uuid.UUID(first.reservation_id))
    assert (reservation.status, reservation.cost_only) == ("reserved", True)
    assert not reservation.holds_count and reservation.holds_cost

    # At the $10 limit: refused for its cost, though it asks no generation.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await reserve_cost_only(billing, user_id, "0.000000001")
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = error_details(refused.value)
    assert details.reason == "quota-exceeded"
    assert (details.metadata["quota"], details.metadata["limit"]) == ("cost", "10")
    assert "monthly cost quota exceeded" in refused.value.details()
    assert "$10 in progress" in refused.value.details()


async def test_generations_left_do_not_let_a_cost_only_reservation_over_the_cost_limit(
    billing: Stub, db: Database
):
    user_id = new_user()
    await reserve(billing, user_id, "9.995")  # four generations left, $0.005 of cost

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await reserve_cost_only(billing, user_id, "0.01")
    assert error_details(refused.value).metadata["quota"] == "cost"
    await reserve_cost_only(billing, user_id, "0.005")  # exactly at the limit
    assert await held(db, user_id) == (1, Decimal("10"))


async def test_a_cost_only_reservation_settles_to_cost_used_without_a_generation(
    billing: Stub, settings: Settings, js: JetStreamContext, db: Database
):
    user_id = new_user()
    await reserve(billing, user_id, "0.5")  # a generation in progress beside it
    reservation_id = str(uuid.uuid4())
    await reserve_cost_only(billing, user_id, "0.05", reservation_id)
    used = suggestion_usage(user_id, reservation_id, cost="0.0123")

    await publish_event(js, settings, used)
    await all_applied(db, used)

    expected = (0, 1, "0.0123", Decimal("0.5"), "settled", [("completed", False)])
    assert await state_of(billing, db, user_id, reservation_id) == expected
    # The same call again, an owner's decision naming it (a producer's bug)
    # and a late release: nothing changes, no generation is counted.
    late = [
        suggestion_usage(user_id, reservation_id, cost="0.0123"),
        delivered(user_id, reservation_id),
        discarded(user_id, reservation_id),
    ]
    for event in late:
        await publish_event(js, settings, event)
    await all_applied(db, *late)
    released = await billing.ReleaseReservation(
        billing_pb2.ReleaseReservationRequest(user_id=user_id, reservation_id=reservation_id)
    )
    assert released.released is False
    assert await state_of(billing, db, user_id, reservation_id) == expected


async def test_usage_of_a_counting_purpose_under_a_cost_only_reservation_counts_no_generation(
    billing: Stub, settings: Settings, js: JetStreamContext, db: Database
):
    """A cost-only reservation reserved no generation: whatever its event
    says, none is counted (it could go over the plan's generations)."""
    user_id = new_user()
    reservation_id = str(uuid.uuid4())
    await reserve_cost_only(billing, user_id, "0.05", reservation_id)
    used = usage_event(user_id, reservation_id, generation_id=reservation_id, cost="0.02")

    await publish_event(js, settings, used)
    await all_applied(db, used)

    assert await state_of(billing, db, user_id, reservation_id) == (
        0, 0, "0.02", Decimal(0), "settled", [("completed", False)]
    )


async def test_releasing_a_cost_only_reservation_gives_back_its_cost_alone(
    billing: Stub, db: Database
):
    user_id = new_user()
    await reserve(billing, user_id, "1")
    cost_only = await reserve_cost_only(billing, user_id, "9")
    release = billing_pb2.ReleaseReservationRequest(
        user_id=user_id, reservation_id=cost_only.reservation_id
    )

    assert (await billing.ReleaseReservation(release)).released is True
    assert (await billing.ReleaseReservation(release)).released is False
    assert await held(db, user_id) == (1, Decimal("1"))
    assert await reservation_status(db, cost_only.reservation_id) == "released"
    await reserve_cost_only(billing, user_id, "9")  # its cost is free again, once
    with pytest.raises(grpc.aio.AioRpcError):
        await reserve_cost_only(billing, user_id, "0.01")


async def test_an_expired_cost_only_reservation_gives_back_its_cost_alone(
    billing: Stub, db: Database
):
    user_id = new_user()
    await reserve(billing, user_id, "1")  # outstanding, not due
    orphaned = str(uuid.uuid4())  # no call was ever made under it
    await reserve_cost_only(billing, user_id, "2", orphaned)

    await make_due(db, orphaned)
    await eventually(lambda: _is(reservation_status(db, orphaned), "expired"), timeout=5)

    assert await held(db, user_id) == (1, Decimal("1"))


async def test_concurrent_cost_only_reservations_never_exceed_the_cost_limit(
    billing: Stub, db: Database
):
    user_id = new_user()
    for _ in range(5):  # no generation left, $2.5 of the $10 spent
        await reserve(billing, user_id, "0.5")

    results = await asyncio.gather(
        *(reserve_cost_only(billing, user_id, "1") for _ in range(30)), return_exceptions=True
    )

    granted = [r for r in results if isinstance(r, billing_pb2.Reservation)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert (len(granted), len(refused)) == (7, 23)
    assert {error_details(e).metadata["quota"] for e in refused} == {"cost"}
    assert await held(db, user_id) == (5, Decimal("9.5"))


async def test_a_batch_probes_the_ledger_by_its_index_once_it_holds_tens_of_thousands_of_rows(
    session: AsyncSession,
):
    """A settling batch looks up a few hundred of its event ids in the ledger.
    Planned as a consumer's batch is (its values, cached rows costed as
    such), that is an index lookup however the ledger grows: under
    Postgres's disk-era default it became a scan of the whole ledger, so the
    database's work per event grew with the ledger."""
    from fabula_billing.usage import repository
    from fabula_common.messaging.consumers import _PLAN_EACH_BATCH
    from sqlalchemy import text

    now = utcnow()
    entries = [
        repository.LedgerEntry(
            event_id=f"plan-{i}", user_id=uuid.uuid4(), reservation_id=None,
            generation_id=f"g-{i}", purpose="story_continuation", subject_kind="story",
            subject_id="s", attributes={}, model="m", provider="p", prompt_tokens=1,
            completion_tokens=1, usage_estimated=False, cost_usd=Decimal("0.001"),
            outcome="completed", counted=True, occurred_at=now, recorded_at=now,
        )
        for i in range(40_000)
    ]
    await repository.add_ledger_entries(session, entries)
    await session.execute(text("ANALYZE billing.usage_ledger"))
    await session.execute(_PLAN_EACH_BATCH)

    plan = "\n".join(
        await session.scalars(
            text("EXPLAIN SELECT event_id FROM billing.usage_ledger WHERE event_id = ANY(:ids)"),
            {"ids": [f"plan-{i}" for i in range(0, 40_000, 80)]},
        )
    )

    assert "Seq Scan" not in plan, plan
    assert "uq_usage_ledger_event_id" in plan, plan
