"""Story suggestions over real gRPC, Postgres and NATS, with the real billing
service reserving their cost and settling their usage: ideas from the offline
generator and from a (fake) Mistral through structured output, metered as
cost only (stopped by the plan's cost limit, never by its generations), and
the per-user rate limit."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

import grpc
import pytest
from fabula.billing.v1 import billing_pb2, billing_pb2_grpc
from fabula.generation.v1 import events_pb2, generation_pb2, generation_pb2_grpc
from fabula.users.v1 import events_pb2 as users_events
from fabula_billing.app import create_app as create_billing_app
from fabula_billing.settings import Settings as BillingSettings
from fabula_billing.usage.models import Account, Reservation
from fabula_common.db import Database
from fabula_common.errors import UpstreamError, error_details
from fabula_common.money import from_money
from fabula_common.testing import free_port, running_app
from fabula_generation.app import create_app
from fabula_generation.database import outbox
from fabula_generation.generations.models import Generation
from fabula_generation.leaving.service import delete_user_generations
from fabula_generation.settings import Settings
from fabula_generation.suggestions.domain import SuggestionRequest, parse_ideas
from fabula_generation.suggestions.models import SuggestionRateWindow
from fabula_generation.suggestions.offline_ideas import compose_ideas
from sqlalchemy import select, update

PRICES = {"mistral-small-latest": {"prompt": "1000", "completion": "2000"}}


@pytest.fixture(scope="module")
async def billing(test_database, test_stream) -> AsyncIterator[billing_pb2_grpc.BillingServiceStub]:
    """The real billing service, settling usage from UsageRecorded."""
    async with running_app(create_billing_app(BillingSettings(grpc_port=free_port()))) as address:
        os.environ["BILLING_ADDR"] = address
        async with grpc.aio.insecure_channel(address) as channel:
            yield billing_pb2_grpc.BillingServiceStub(channel)
        del os.environ["BILLING_ADDR"]


@pytest.fixture(scope="module")
async def db(test_database) -> AsyncIterator[Database]:
    database = Database(Settings())
    yield database
    await database.dispose()


@pytest.fixture(scope="module")
async def billing_db(test_database) -> AsyncIterator[Database]:
    """Billing's tables, to look behind its API or spend a user's cost."""
    database = Database(BillingSettings())
    yield database
    await database.dispose()


async def billing_account(billing_db: Database, user_id: str) -> Account:
    async with billing_db.session_scope() as session:
        return await session.get(Account, uuid.UUID(user_id))


async def reservation_of(billing_db: Database, reservation_id: str) -> Reservation | None:
    async with billing_db.session_scope() as session:
        return await session.get(Reservation, uuid.UUID(reservation_id))


@asynccontextmanager
async def serving(**overrides) -> AsyncIterator[generation_pb2_grpc.GenerationServiceStub]:
    settings = Settings(grpc_port=free_port(), **{"provider": "offline", **overrides})
    async with (
        running_app(create_app(settings)) as address,
        grpc.aio.insecure_channel(address) as channel,
    ):
        yield generation_pb2_grpc.GenerationServiceStub(channel)


@asynccontextmanager
async def serving_mistral(fake_mistral, **overrides):
    async with serving(
        provider="mistral",
        mistral_api_key="sk-test",
        mistral_server_url=fake_mistral.url,
        prices=PRICES,
        **overrides,
    ) as stub:
        yield stub


@pytest.fixture(scope="module")
async def generation(billing):
    async with serving() as stub:
        yield stub


def suggest(user_id: str | None = None, **fields) -> generation_pb2.SuggestStoriesRequest:
    if user_id is None:
        user_id = str(uuid.uuid4())
    return generation_pb2.SuggestStoriesRequest(user_id=user_id, **fields)


async def rows_for_user(db: Database, user_id: str) -> list[Generation]:
    async with db.session_scope() as session:
        query = select(Generation).where(Generation.user_id == user_id)
        return list((await session.scalars(query)).all())


async def usage_event_of(db: Database, generation_id: str) -> events_pb2.UsageRecorded:
    async with db.session_scope() as session:
        # Other events (a job's JobCompleted) share the outbox.
        query = select(outbox.c.payload).where(
            outbox.c.event_type == events_pb2.UsageRecorded.DESCRIPTOR.full_name
        )
        payloads = (await session.scalars(query)).all()
    (event,) = [
        event
        for event in map(events_pb2.UsageRecorded.FromString, payloads)
        if event.generation_id == generation_id
    ]
    return event


async def ledger_entry(
    billing: billing_pb2_grpc.BillingServiceStub, user_id: str, generation_id: str
) -> billing_pb2.UsageLog:
    """The user's usage log of the generation, once billing applied its event."""
    async with asyncio.timeout(15):
        while True:
            page = await billing.ListUsageLogs(
                billing_pb2.ListUsageLogsRequest(user_id=user_id, limit=100)
            )
            for log in page.logs:
                if log.generation_id == generation_id:
                    return log
            await asyncio.sleep(0.05)


async def test_offline_ideas_say_they_come_from_no_language_model(generation, db):
    user_id = str(uuid.uuid4())
    response = await generation.SuggestStories(suggest(user_id))

    assert len(response.ideas) == 3  # count 0: three
    for idea in response.ideas:
        assert idea.title and idea.genre and idea.opening_line
        assert 2 <= len(idea.characters) <= 3
        assert all(", " in character for character in idea.characters)  # "Name, a role"
    assert len({idea.title for idea in response.ideas}) == 3
    assert len({idea.genre for idea in response.ideas}) == 3  # any genre: spread over several
    assert (response.provider, response.model, response.is_language_model) == (
        "offline",
        "offline",
        False,
    )
    assert response.usage.completion_tokens > 0 and not response.usage.estimated
    (row,) = await rows_for_user(db, user_id)
    # Its cost was reserved under the generation's id.
    assert (str(row.id), row.purpose, row.outcome, row.reservation_id) == (
        response.generation_id,
        "story_suggestions",
        "completed",
        response.generation_id,
    )


async def test_offline_ideas_keep_the_genre_and_vary_from_call_to_call(generation):
    user_id = str(uuid.uuid4())
    first = await generation.SuggestStories(suggest(user_id, genre="Science Fiction", count=10))
    second = await generation.SuggestStories(suggest(user_id, genre="Science Fiction", count=10))

    assert len(first.ideas) == 10
    assert {idea.genre for idea in first.ideas} == {"Science Fiction"}
    assert len({idea.title for idea in first.ideas}) == 10
    assert len({idea.opening_line for idea in first.ideas}) == 10
    assert [idea.title for idea in first.ideas] != [idea.title for idea in second.ideas]


def test_offline_ideas_are_the_same_for_the_same_seed():
    request = SuggestionRequest.validated("u1", "mystery", 4, "", seed=42)
    assert compose_ideas(request) == compose_ideas(request)
    other = SuggestionRequest.validated("u1", "mystery", 4, "", seed=43)
    assert compose_ideas(request) != compose_ideas(other)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"count": 11}, "count must be between 1 and 10"),
        ({"count": -1}, "count must be between 1 and 10"),
        ({"genre": "x" * 51}, "genre must be at most 50 characters"),
        ({"locale": "fr"}, "locale must be one of en, de"),
        ({"user_id": ""}, "user_id is required"),
    ],
)
async def test_invalid_requests_are_refused_and_not_recorded(generation, db, fields, message):
    user_id = fields.get("user_id", str(uuid.uuid4()))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await generation.SuggestStories(suggest(**{**fields, "user_id": user_id}))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert message in caught.value.details()
    assert await rows_for_user(db, user_id) == []


async def test_mistral_is_held_to_the_ideas_schema_and_its_cost_is_billed_not_counted(
    billing, db, billing_db, fake_mistral
):
    user_id = str(uuid.uuid4())
    async with serving_mistral(fake_mistral) as stub:
        response = await stub.SuggestStories(suggest(user_id, genre="mystery", count=2, locale="de"))

    # The request: structured output with the ideas' schema, in German.
    (sent,) = fake_mistral.requests
    response_format = sent["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["strict"] is True
    schema = response_format["json_schema"]["schema"]
    assert schema["required"] == ["ideas"]
    assert set(schema["properties"]["ideas"]["items"]["required"]) == {
        "title",
        "genre",
        "characters",
        "opening_line",
    }
    assert "Deutsch" in sent["messages"][0]["content"]
    assert "2" in sent["messages"][1]["content"] and "mystery" in sent["messages"][1]["content"]
    # The answer: the fake's three ideas, cut to the two asked for.
    assert len(response.ideas) == 2
    assert all(idea.title and idea.opening_line and idea.characters for idea in response.ideas)
    assert (response.provider, response.model, response.is_language_model) == (
        "mistral",
        "mistral-small-latest",
        True,
    )
    usage = response.usage
    cost = (usage.prompt_tokens * 1000 + usage.completion_tokens * 2000) / Decimal(10**6)
    assert not usage.estimated and from_money(usage.cost) == cost > 0

    # Recorded and reported like any model call, naming its cost-only reservation.
    event = await usage_event_of(db, response.generation_id)
    assert event.purpose == generation_pb2.PURPOSE_STORY_SUGGESTIONS
    assert (event.reservation_id, event.subject.kind, event.subject.id) == (
        response.generation_id,
        "user",
        user_id,
    )
    assert event.outcome == events_pb2.GENERATION_OUTCOME_COMPLETED
    assert event.delivery == generation_pb2.DELIVERY_ON_COMPLETION

    # Billing: paid as cost, logged as a suggestion, no generation counted, the
    # reservation settled and nothing held any more.
    log = await ledger_entry(billing, user_id, response.generation_id)
    assert (log.operation, log.counted, from_money(log.cost)) == ("suggestion", False, cost)
    account = await billing.GetUsage(billing_pb2.GetUsageRequest(user_id=user_id))
    assert (account.generations_used, account.generations_reserved) == (0, 0)
    assert from_money(account.cost_used) == cost
    reservation = await reservation_of(billing_db, response.generation_id)
    assert (reservation.cost_only, reservation.status) == (True, "settled")
    assert (await billing_account(billing_db, user_id)).cost_reserved_usd == 0


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        ("bad-json", "the model's story ideas were not valid JSON"),
        ("cut-off", "the model's story ideas were cut off"),
    ],
)
async def test_an_unusable_answer_is_an_upstream_error_recorded_with_its_tokens(
    billing, db, billing_db, fake_mistral, behaviour, message
):
    user_id = str(uuid.uuid4())
    fake_mistral.queue(behaviour)
    async with serving_mistral(fake_mistral) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.SuggestStories(suggest(user_id))

    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    assert error_details(caught.value).reason == "upstream-error"
    assert message in caught.value.details()
    (row,) = await rows_for_user(db, user_id)
    assert (row.purpose, row.outcome) == ("story_suggestions", "failed")
    assert message in row.error
    assert row.completion_tokens > 0 and row.cost_usd > 0  # the model wrote: it is paid
    log = await ledger_entry(billing, user_id, str(row.id))
    assert (log.operation, log.outcome, log.counted) == ("suggestion", "failed", False)
    # Its reservation is settled by that event: the tokens paid, nothing held.
    account = await billing_account(billing_db, user_id)
    assert (account.generations_used, account.generations_reserved) == (0, 0)
    assert (account.cost_used_usd, account.cost_reserved_usd) == (row.cost_usd, 0)


def test_an_answer_off_the_schema_says_where():
    with pytest.raises(UpstreamError, match=r"ideas\.0\.opening_line: Field required"):
        parse_ideas('{"ideas": [{"title": "T", "genre": "g", "characters": []}]}', 3)
    with pytest.raises(UpstreamError, match=r"ideas: List should have at least 1 item"):
        parse_ideas('{"ideas": []}', 3)


async def test_concurrent_calls_over_the_limit_admit_exactly_the_limit(billing, db):
    user_id = str(uuid.uuid4())
    async with serving(suggestions_rate_limit=4) as stub:
        results = await asyncio.gather(
            *(stub.SuggestStories(suggest(user_id)) for _ in range(12)),
            return_exceptions=True,
        )
        # Another user has a window of their own.
        await stub.SuggestStories(suggest())

    admitted = [r for r in results if isinstance(r, generation_pb2.SuggestStoriesResponse)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert (len(admitted), len(refused)) == (4, 8)
    for error in refused:
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        details = error_details(error)
        assert details.reason == "rate-limited"
        assert 1 <= details.retry_after <= 60
    # Refused calls cost nothing and leave no record.
    assert len(await rows_for_user(db, user_id)) == 4


async def test_a_full_window_frees_once_it_ends(billing):
    user_id = str(uuid.uuid4())
    async with serving(suggestions_rate_limit=1, suggestions_rate_window_seconds=1) as stub:
        await stub.SuggestStories(suggest(user_id))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.SuggestStories(suggest(user_id))
        assert error_details(caught.value).retry_after == 1
        await asyncio.sleep(1.1)
        await stub.SuggestStories(suggest(user_id))


async def test_a_deleted_user_leaves_no_rate_window_behind(generation, db):
    user_id = str(uuid.uuid4())
    await generation.SuggestStories(suggest(user_id))

    async with db.session_scope() as session:
        await delete_user_generations(
            session, users_events.UserDeleted(event_id=str(uuid.uuid4()), user_id=user_id)
        )
    async with db.session_scope() as session:
        windows = await session.scalars(
            select(SuggestionRateWindow).where(SuggestionRateWindow.user_id == user_id)
        )
        assert list(windows) == []
    assert await rows_for_user(db, user_id) == []


# --- Metered as cost only: the plan's cost limit stops suggestions -----------------


async def spend_all_cost(billing, billing_db: Database, user_id: str) -> None:
    """As if the user's model calls had used the free plan's $10 this month
    (none of its 5 generations)."""
    await billing.GetUsage(billing_pb2.GetUsageRequest(user_id=user_id))  # opens the account
    async with billing_db.session_scope() as session:
        await session.execute(
            update(Account)
            .where(Account.user_id == uuid.UUID(user_id))
            .values(cost_used_usd=Decimal(10))
        )


async def test_a_user_at_the_cost_limit_is_refused_before_the_model_is_called(
    billing, db, billing_db, fake_mistral
):
    """Generations left do not help: a suggestion is paid from the cost quota."""
    user_id = str(uuid.uuid4())
    await spend_all_cost(billing, billing_db, user_id)

    async with serving_mistral(fake_mistral) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.SuggestStories(suggest(user_id))

    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    details = error_details(caught.value)
    assert details.reason == "quota-exceeded"
    assert (details.metadata["plan"], details.metadata["quota"]) == ("free", "cost")
    assert details.metadata["limit"] == "10"
    assert "monthly cost quota exceeded" in caught.value.details()
    # Refused before the model: nothing asked, recorded, spent or held.
    assert fake_mistral.requests == []
    assert await rows_for_user(db, user_id) == []
    account = await billing_account(billing_db, user_id)
    assert (account.generations_used, account.generations_reserved) == (0, 0)
    assert (account.cost_used_usd, account.cost_reserved_usd) == (Decimal(10), 0)


async def test_a_user_with_no_generations_left_still_gets_suggestions(
    billing, generation, billing_db
):
    user_id = str(uuid.uuid4())
    for _ in range(5):  # every generation of the free plan in progress
        await billing.ReserveGeneration(billing_pb2.ReserveGenerationRequest(user_id=user_id))

    response = await generation.SuggestStories(suggest(user_id))

    assert len(response.ideas) == 3
    log = await ledger_entry(billing, user_id, response.generation_id)
    assert (log.operation, log.counted) == ("suggestion", False)
    account = await billing.GetUsage(billing_pb2.GetUsageRequest(user_id=user_id))
    assert (account.generations_used, account.generations_reserved) == (0, 5)
