"""Usage logs, the usage breakdown and what a quota refusal tells, over real
gRPC, Postgres and NATS JetStream: the numbers a user reads add up to the
ledger and to the account."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import grpc
import nats
import pytest
from fabula.billing.v1 import billing_pb2, billing_pb2_grpc
from fabula.generation.v1 import events_pb2 as generation_events
from fabula.generation.v1 import generation_pb2
from fabula.stories.v1 import events_pb2 as stories_events
from fabula_billing.app import create_app
from fabula_billing.database import processed_events
from fabula_billing.settings import Settings
from fabula_billing.usage.models import Account, UsageLedgerEntry
from fabula_common.db import Database, utcnow
from fabula_common.errors import error_details
from fabula_common.messaging.bus import subject_for
from fabula_common.messaging.headers import MSG_ID_HEADER
from fabula_common.money import from_money, to_money
from fabula_common.testing import free_port, running_app
from google.protobuf.message import Message
from nats.js import JetStreamContext
from nats.js.errors import NoStreamResponseError
from sqlalchemy import select, update

Stub = billing_pb2_grpc.BillingServiceStub


@pytest.fixture(scope="module")
async def settings(test_database, test_stream) -> Settings:
    return Settings(grpc_port=free_port())


@pytest.fixture(scope="module")
async def billing(settings: Settings) -> AsyncIterator[Stub]:
    async with (
        running_app(create_app(settings)) as address,
        grpc.aio.insecure_channel(address) as channel,
    ):
        yield Stub(channel)


@pytest.fixture(scope="module")
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings)
    yield database
    await database.dispose()


@pytest.fixture(scope="module")
async def js(test_stream) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(os.environ["NATS_URL"], connect_timeout=2)
    yield nc.jetstream()
    await nc.close()


async def publish(js: JetStreamContext, settings: Settings, event: Message) -> None:
    """Publish as the producer's outbox relay does (the event id as Nats-Msg-Id).
    The stream appears once billing's consumers have connected."""
    subject = {
        generation_events.UsageRecorded: subject_for(settings, "generation", "usage_recorded"),
        stories_events.GenerationDelivered: subject_for(
            settings, "stories", "generation_delivered"
        ),
        stories_events.GenerationDiscarded: subject_for(
            settings, "stories", "generation_discarded"
        ),
    }[type(event)]
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        try:
            await js.publish(
                subject, event.SerializeToString(), headers={MSG_ID_HEADER: event.event_id}
            )
            return
        except NoStreamResponseError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)


async def all_applied(db: Database, events: list[Message], timeout: float = 15) -> None:
    wanted = {event.event_id for event in events}
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        async with db.session_scope() as session:
            found = set(
                await session.scalars(
                    select(processed_events.c.event_id).where(
                        processed_events.c.event_id.in_(wanted)
                    )
                )
            )
        if found == wanted:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{len(wanted - found)} events not applied in {timeout}s")
        await asyncio.sleep(0.05)


async def reserve(billing: Stub, user_id: str, estimate: str | None = None) -> str:
    """Reserve as the generation service does: under the generation's id."""
    generation_id = str(uuid.uuid4())
    request = billing_pb2.ReserveGenerationRequest(user_id=user_id, reservation_id=generation_id)
    if estimate is not None:
        request.estimated_cost.CopyFrom(to_money(Decimal(estimate)))
    await billing.ReserveGeneration(request)
    return generation_id


def usage_event(
    user_id: str,
    generation_id: str,
    *,
    purpose: int,
    model: str,
    cost: str,
    outcome: int = generation_events.GENERATION_OUTCOME_COMPLETED,
    confirmed_by_owner: bool = False,
    story_id: str | None = None,
    occurred_at: dt.datetime | None = None,
    reserved: bool = True,
) -> generation_events.UsageRecorded:
    event = generation_events.UsageRecorded(
        event_id=str(uuid.uuid4()),
        generation_id=generation_id,
        reservation_id=generation_id if reserved else "",
        user_id=user_id,
        purpose=purpose,
        provider="offline" if model.startswith("offline") else "mistral",
        model=model,
        prompt_tokens=100,
        completion_tokens=40,
        cost=to_money(Decimal(cost)),
        outcome=outcome,
        delivery=(
            generation_pb2.DELIVERY_CONFIRMED_BY_OWNER
            if confirmed_by_owner
            else generation_pb2.DELIVERY_ON_COMPLETION
        ),
    )
    if story_id is not None:
        event.subject.CopyFrom(generation_pb2.SubjectRef(kind="story", id=story_id))
    event.occurred_at.FromDatetime(occurred_at or utcnow())
    return event


OPENING = generation_pb2.PURPOSE_STORY_OPENING
CONTINUATION = generation_pb2.PURPOSE_STORY_CONTINUATION
ENDING = generation_pb2.PURPOSE_STORY_ENDING


async def mixed_usage(billing: Stub, js: JetStreamContext, settings: Settings, db: Database):
    """A user's month: completed, failed and cancelled calls of three
    operations on two models, owner-confirmed ones delivered and discarded,
    and usage without a reservation. Returns (user_id, the usage events)."""
    user_id = str(uuid.uuid4())
    await billing.GetUsage(billing_pb2.GetUsageRequest(user_id=user_id))  # opens the account
    async with db.session_scope() as session:  # more generations than free's 5
        await session.execute(
            update(Account).where(Account.user_id == uuid.UUID(user_id)).values(plan="pro")
        )
    story_id = str(uuid.uuid4())
    base = utcnow() - dt.timedelta(minutes=5)
    events: list[Message] = []

    def add(*, minute: float, **fields) -> generation_events.UsageRecorded:
        generation_id = fields.pop("generation_id", None) or str(uuid.uuid4())
        event = usage_event(
            user_id,
            generation_id,
            story_id=story_id,
            occurred_at=base + dt.timedelta(seconds=minute * 60),
            **fields,
        )
        events.append(event)
        return event

    # Counted on completion.
    add(minute=0, generation_id=await reserve(billing, user_id), purpose=OPENING,
        model="mistral-small", cost="0.0021")
    add(minute=1, generation_id=await reserve(billing, user_id), purpose=CONTINUATION,
        model="mistral-small", cost="0.0013")
    # Failed and cancelled: paid, never counted.
    add(minute=2, generation_id=await reserve(billing, user_id), purpose=CONTINUATION,
        model="mistral-large", cost="0.0100", outcome=generation_events.GENERATION_OUTCOME_FAILED)
    add(minute=2, generation_id=await reserve(billing, user_id), purpose=ENDING,
        model="mistral-small", cost="0.0007",
        outcome=generation_events.GENERATION_OUTCOME_CANCELLED)
    # Confirmed by the owner: one delivered (counts), one discarded (does not).
    delivered_id = await reserve(billing, user_id)
    add(minute=3, generation_id=delivered_id, purpose=ENDING, model="mistral-large",
        cost="0.0300", confirmed_by_owner=True)
    events.append(
        stories_events.GenerationDelivered(
            event_id=str(uuid.uuid4()), generation_id=delivered_id, user_id=user_id,
            story_id=story_id, segment_id=str(uuid.uuid4()),
        )
    )
    discarded_id = await reserve(billing, user_id)
    add(minute=4, generation_id=discarded_id, purpose=CONTINUATION, model="mistral-large",
        cost="0.0200", confirmed_by_owner=True)
    events.append(
        stories_events.GenerationDiscarded(
            event_id=str(uuid.uuid4()), generation_id=discarded_id, user_id=user_id,
            story_id=story_id, reason="model-failed",
        )
    )
    # Usage without a reservation (it counts), about no story, of another
    # purpose; and one more call at the very same moment as another.
    unreserved = usage_event(
        user_id, str(uuid.uuid4()), purpose=generation_pb2.PURPOSE_UNSPECIFIED,
        model="offline-1", cost="0", occurred_at=base + dt.timedelta(minutes=1), reserved=False,
    )
    events.append(unreserved)
    add(minute=1, generation_id=await reserve(billing, user_id), purpose=OPENING,
        model="offline-1", cost="0")

    for event in events:
        await publish(js, settings, event)
    await all_applied(db, events)
    return user_id, [e for e in events if isinstance(e, generation_events.UsageRecorded)]


async def all_logs(billing: Stub, user_id: str, limit: int) -> list[billing_pb2.UsageLog]:
    logs, cursor, pages = [], "", 0
    while True:
        page = await billing.ListUsageLogs(
            billing_pb2.ListUsageLogsRequest(user_id=user_id, limit=limit, cursor=cursor)
        )
        pages += 1
        assert len(page.logs) <= limit
        logs.extend(page.logs)
        if not page.next_cursor:
            return logs
        assert pages < 100, "the pages never end"
        cursor = page.next_cursor


def money(value) -> Decimal:
    return from_money(value)


def row_sums(rows) -> tuple:
    return (
        sum(r.generations for r in rows),
        sum(r.calls for r in rows),
        sum(r.prompt_tokens for r in rows),
        sum(r.completion_tokens for r in rows),
        sum((money(r.cost) for r in rows), Decimal(0)),
    )


async def test_logs_and_breakdown_add_up_to_the_ledger_and_the_account(
    billing: Stub, js: JetStreamContext, settings: Settings, db: Database
):
    user_id, usage_events = await mixed_usage(billing, js, settings, db)

    logs = await all_logs(billing, user_id, limit=3)
    breakdown = await billing.GetUsageBreakdown(
        billing_pb2.GetUsageBreakdownRequest(user_id=user_id)
    )
    summary = await billing.GetUsage(billing_pb2.GetUsageRequest(user_id=user_id))
    async with db.session_scope() as session:
        ledger_ids = set(
            await session.scalars(
                select(UsageLedgerEntry.id).where(UsageLedgerEntry.user_id == uuid.UUID(user_id))
            )
        )

    # Every entry once, newest first.
    assert len(logs) == len(usage_events) == 8
    assert {int(log.id) for log in logs} == ledger_ids
    keys = [(log.created_at.ToDatetime(dt.UTC), int(log.id)) for log in logs]
    assert keys == sorted(keys, reverse=True)
    # Costs: logs == breakdown total == the account.
    logged_cost = sum((money(log.cost) for log in logs), Decimal(0))
    assert logged_cost == Decimal("0.0641")
    assert money(breakdown.total.cost) == logged_cost == money(summary.cost_used)
    # Generations: what counted in the logs == breakdown total == the account.
    counted = [log for log in logs if log.counted]
    assert len(counted) == breakdown.total.generations == summary.generations_used == 5
    assert summary.generations_reserved == 0
    assert breakdown.total.calls == 8
    assert breakdown.total.prompt_tokens == 800 and breakdown.total.completion_tokens == 320
    # Each grouping sums to the total.
    total = (5, 8, 800, 320, logged_cost)
    assert row_sums(breakdown.by_model) == total
    assert row_sums(breakdown.by_operation) == total
    by_model = {(r.key, r.provider): r for r in breakdown.by_model}
    assert set(by_model) == {
        ("mistral-small", "mistral"), ("mistral-large", "mistral"), ("offline-1", "offline")
    }
    large = by_model["mistral-large", "mistral"]
    assert (large.generations, large.calls, money(large.cost)) == (1, 3, Decimal("0.06"))
    by_operation = {r.key: r for r in breakdown.by_operation}
    assert set(by_operation) == {"opening", "continuation", "ending", "unspecified"}
    assert (by_operation["ending"].generations, by_operation["ending"].calls) == (1, 2)
    assert breakdown.period_start == summary.period_start
    assert breakdown.period_end == summary.period_end


async def test_a_log_says_what_the_call_was(
    billing: Stub, js: JetStreamContext, settings: Settings, db: Database
):
    user_id, usage_events = await mixed_usage(billing, js, settings, db)

    logs = {log.generation_id: log for log in await all_logs(billing, user_id, limit=100)}

    failed = next(
        e for e in usage_events if e.outcome == generation_events.GENERATION_OUTCOME_FAILED
    )
    log = logs[failed.generation_id]
    assert (log.operation, log.story_id, log.provider, log.model) == (
        "continuation", failed.subject.id, "mistral", "mistral-large"
    )
    assert (log.prompt_tokens, log.completion_tokens, money(log.cost)) == (
        100, 40, Decimal("0.01")
    )
    assert (log.outcome, log.counted, log.estimated) == ("failed", False, False)
    assert log.created_at == failed.occurred_at
    unreserved = next(e for e in usage_events if not e.HasField("subject"))
    assert (logs[unreserved.generation_id].operation, logs[unreserved.generation_id].story_id) == (
        "unspecified", ""
    )
    # A delivered owner-confirmed call reads as counted once its delivery is known.
    assert sorted(log.operation for log in logs.values() if log.counted) == [
        "continuation", "ending", "opening", "opening", "unspecified"
    ]


async def test_pages_never_skip_nor_repeat_while_entries_arrive(
    billing: Stub, js: JetStreamContext, settings: Settings, db: Database
):
    user_id, usage_events = await mixed_usage(billing, js, settings, db)
    first = await billing.ListUsageLogs(
        billing_pb2.ListUsageLogsRequest(user_id=user_id, limit=3)
    )
    # Arriving between pages: one newer than everything, one older than the first page.
    newest = usage_event(user_id, str(uuid.uuid4()), purpose=OPENING, model="offline-1",
                         cost="0.5")
    oldest = usage_event(user_id, str(uuid.uuid4()), purpose=OPENING, model="offline-1",
                         cost="0.25", occurred_at=utcnow() - dt.timedelta(hours=1))
    for event in (newest, oldest):
        await publish(js, settings, event)
    await all_applied(db, [newest, oldest])

    rest, cursor = [], first.next_cursor
    while cursor:
        page = await billing.ListUsageLogs(
            billing_pb2.ListUsageLogsRequest(user_id=user_id, limit=3, cursor=cursor)
        )
        rest.extend(page.logs)
        cursor = page.next_cursor

    seen = [log.generation_id for log in [*first.logs, *rest]]
    assert len(seen) == len(set(seen))
    # Everything that was there when the walk began, plus the older newcomer.
    assert set(seen) == {e.generation_id for e in [*usage_events, oldest]}
    assert rest[-1].generation_id == oldest.generation_id


async def test_the_breakdown_is_the_current_period_only(
    billing: Stub, js: JetStreamContext, settings: Settings, db: Database
):
    user_id, _ = await mixed_usage(billing, js, settings, db)
    summary = await billing.GetUsage(billing_pb2.GetUsageRequest(user_id=user_id))
    period_start = summary.period_start.ToDatetime(dt.UTC)
    async with db.session_scope() as session:
        # Two entries applied last period (their cost is last period's usage).
        moved = list(
            await session.scalars(
                update(UsageLedgerEntry)
                .where(
                    UsageLedgerEntry.user_id == uuid.UUID(user_id),
                    UsageLedgerEntry.model == "mistral-small",
                    UsageLedgerEntry.outcome == "completed",
                )
                .values(recorded_at=period_start - dt.timedelta(seconds=1))
                .returning(UsageLedgerEntry.cost_usd)
            )
        )
        assert len(moved) == 2
        await session.execute(
            update(Account)
            .where(Account.user_id == uuid.UUID(user_id))
            .values(
                generations_used=Account.generations_used - 2,
                cost_used_usd=Account.cost_used_usd - sum(moved),
            )
        )

    breakdown = await billing.GetUsageBreakdown(
        billing_pb2.GetUsageBreakdownRequest(user_id=user_id)
    )
    summary = await billing.GetUsage(billing_pb2.GetUsageRequest(user_id=user_id))

    assert (breakdown.total.calls, breakdown.total.generations) == (6, 3)
    assert money(breakdown.total.cost) == money(summary.cost_used) == Decimal("0.0607")
    assert breakdown.total.generations == summary.generations_used
    # The logs still show every entry.
    assert len(await all_logs(billing, user_id, limit=100)) == 8


async def test_a_user_without_usage_has_an_empty_page_and_a_zero_breakdown(billing: Stub):
    user_id = str(uuid.uuid4())
    page = await billing.ListUsageLogs(billing_pb2.ListUsageLogsRequest(user_id=user_id))
    breakdown = await billing.GetUsageBreakdown(
        billing_pb2.GetUsageBreakdownRequest(user_id=user_id)
    )

    assert (list(page.logs), page.next_cursor) == ([], "")
    assert (list(breakdown.by_model), list(breakdown.by_operation)) == ([], [])
    assert (breakdown.total.calls, money(breakdown.total.cost)) == (0, Decimal(0))
    assert breakdown.period_end.ToDatetime(dt.UTC) > utcnow()


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ({"cursor": "not a cursor!"}, "cursor is malformed"),
        ({"cursor": "AAAA"}, "cursor is malformed"),  # base64, but not a cursor's bytes
        ({"limit": 101}, "limit must be between 1 and 100"),
        ({"limit": -1}, "limit must be between 1 and 100"),
        ({"user_id": "nobody"}, "user_id must be a UUID"),
    ],
)
async def test_bad_log_requests_are_invalid_arguments(billing: Stub, request_fields, message):
    request = billing_pb2.ListUsageLogsRequest(user_id=str(uuid.uuid4()))
    for name, value in request_fields.items():
        setattr(request, name, value)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await billing.ListUsageLogs(request)

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in refused.value.details()
    assert error_details(refused.value).reason == "invalid-argument"


async def test_a_quota_refusal_names_the_plan_the_limit_and_when_it_resets(billing: Stub):
    user_id = str(uuid.uuid4())
    for _ in range(5):
        await reserve(billing, user_id)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await reserve(billing, user_id)

    summary = await billing.GetUsage(billing_pb2.GetUsageRequest(user_id=user_id))
    details = error_details(refused.value)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details.reason == "quota-exceeded"
    assert details.metadata == {
        "plan": "free",
        "quota": "generations",
        "limit": "5",
        "resets_at": summary.period_end.ToJsonString(),
    }


async def test_a_cost_refusal_names_the_cost_limit(billing: Stub):
    user_id = str(uuid.uuid4())
    await reserve(billing, user_id, "9.5")

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await reserve(billing, user_id, "0.75")

    details = error_details(refused.value)
    assert details.reason == "quota-exceeded"
    assert (details.metadata["plan"], details.metadata["quota"], details.metadata["limit"]) == (
        "free", "cost", "10"
    )
    resets_at = dt.datetime.fromisoformat(details.metadata["resets_at"])
    assert resets_at.tzinfo is not None and resets_at > utcnow()


async def test_a_suggestion_is_paid_as_cost_and_never_counted_as_a_generation(
    billing: Stub, js: JetStreamContext, settings: Settings, db: Database
):
    """Story ideas reserve nothing: their usage (no reservation named) is
    billed and logged as operation `suggestion`, and generations_used stays."""
    user_id = str(uuid.uuid4())
    before = await billing.GetUsage(billing_pb2.GetUsageRequest(user_id=user_id))
    suggestion = usage_event(
        user_id,
        str(uuid.uuid4()),
        purpose=generation_pb2.PURPOSE_STORY_SUGGESTIONS,
        model="mistral-small",
        cost="0.0004",
        reserved=False,
    )
    suggestion.subject.CopyFrom(generation_pb2.SubjectRef(kind="user", id=user_id))
    # Delivered again under another message id (past JetStream's dedupe
    # window, say): still applied once.
    redelivered = generation_events.UsageRecorded()
    redelivered.CopyFrom(suggestion)
    await publish(js, settings, suggestion)
    await all_applied(db, [suggestion])
    await js.publish(
        subject_for(settings, "generation", "usage_recorded"),
        redelivered.SerializeToString(),
        headers={MSG_ID_HEADER: f"{suggestion.event_id}-again"},
    )
    # A later event of the same user proves the redelivery was consumed first.
    marker = usage_event(
        user_id, str(uuid.uuid4()), purpose=OPENING, model="offline", cost="0",
        outcome=generation_events.GENERATION_OUTCOME_FAILED, reserved=False,
    )  # fmt: skip
    await publish(js, settings, marker)
    await all_applied(db, [marker])

    usage = await billing.GetUsage(billing_pb2.GetUsageRequest(user_id=user_id))
    assert usage.generations_used == before.generations_used == 0
    assert usage.generations_reserved == 0
    assert money(usage.cost_used) == Decimal("0.0004")  # paid once
    logs = await all_logs(billing, user_id, limit=100)
    suggestion_logs = [log for log in logs if log.generation_id == suggestion.generation_id]
    assert len(suggestion_logs) == 1
    log = suggestion_logs[0]
    assert (log.operation, log.counted, log.outcome, log.story_id) == (
        "suggestion", False, "completed", ""
    )
    assert money(log.cost) == Decimal("0.0004")
    breakdown = await billing.GetUsageBreakdown(
        billing_pb2.GetUsageBreakdownRequest(user_id=user_id)
    )
    by_operation = {row.key: row for row in breakdown.by_operation}
    row = by_operation["suggestion"]
    assert (row.generations, row.calls, money(row.cost)) == (0, 1, Decimal("0.0004"))
    assert breakdown.total.generations == 0


async def test_a_job_stage_is_logged_with_its_production_type_and_paid_as_cost_only(
    billing: Stub, js: JetStreamContext, settings: Settings, db: Database
):
    """A long-form job's model call (no reservation named: the job's hold is
    its own) is billed, logged as operation `job_stage` with the attributes
    the producer sent, and never counted as a generation."""
    user_id = str(uuid.uuid4())
    job_id = str(uuid.uuid4())
    before = await billing.GetUsage(billing_pb2.GetUsageRequest(user_id=user_id))
    stage = usage_event(
        user_id,
        str(uuid.uuid4()),
        purpose=generation_pb2.PURPOSE_JOB_STAGE,
        model="mistral-small",
        cost="0.0150",
        reserved=False,
    )
    stage.attributes.update({"production_type": "short_story", "stage": "draft-1", "job_id": job_id})
    opening = usage_event(
        user_id, str(uuid.uuid4()), purpose=OPENING, model="mistral-small", cost="0.0010",
        reserved=False,
    )  # fmt: skip
    await publish(js, settings, stage)
    await publish(js, settings, opening)
    await all_applied(db, [stage, opening])

    usage = await billing.GetUsage(billing_pb2.GetUsageRequest(user_id=user_id))
    assert usage.generations_used == before.generations_used + 1  # the opening only
    assert money(usage.cost_used) == Decimal("0.0160")
    logs = {log.generation_id: log for log in await all_logs(billing, user_id, limit=100)}
    log = logs[stage.generation_id]
    assert (log.operation, log.counted, money(log.cost)) == ("job_stage", False, Decimal("0.015"))
    assert dict(log.attributes) == {
        "production_type": "short_story", "stage": "draft-1", "job_id": job_id
    }
    assert dict(logs[opening.generation_id].attributes) == {}
    breakdown = await billing.GetUsageBreakdown(
        billing_pb2.GetUsageBreakdownRequest(user_id=user_id)
    )
    # Only the job's call has a production type.
    assert [(r.key, r.generations, r.calls, money(r.cost)) for r in breakdown.by_production_type] == [
        ("short_story", 0, 1, Decimal("0.015"))
    ]
    by_operation = {row.key: row for row in breakdown.by_operation}
    assert (by_operation["job_stage"].generations, by_operation["job_stage"].calls) == (0, 1)
    assert money(breakdown.total.cost) == Decimal("0.016")
