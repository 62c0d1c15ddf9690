"""The generation service over real gRPC, Postgres and NATS."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

import grpc
import nats
import pytest
from fabula.generation.v1 import events_pb2, generation_pb2, generation_pb2_grpc
from fabula_common.db import Database
from fabula_common.errors import error_reason
from fabula_common.grpc_server import GrpcApp
from fabula_common.messaging.bus import subject_for
from fabula_common.testing import free_port, running_app
from fabula_generation.app import SERVICE_NAME, create_app
from fabula_generation.database import outbox
from fabula_generation.generations import repository
from fabula_generation.generations.models import Generation
from fabula_generation.generations.pricing import PriceTable
from fabula_generation.generations.servicer import GenerationRecorder, GenerationServicer
from fabula_generation.providers import Completion, OfflineProvider, ReportedUsage, TextChunk
from fabula_generation.settings import Settings
from sqlalchemy import select


def generate_request(
    kind=generation_pb2.GENERATION_KIND_OPENING, **fields
) -> generation_pb2.GenerateRequest:
    defaults = dict(
        user_id=str(uuid.uuid4()),
        story_id=str(uuid.uuid4()),
        reservation_id=str(uuid.uuid4()),
        kind=kind,
        story=generation_pb2.StoryContext(
            genre="fantasy",
            characters=["Mara, a lighthouse keeper", "Tom"],
            opening_line="The fog came in at noon.",
        ),
        direction="Mara finds the lost ship",
    )
    return generation_pb2.GenerateRequest(**{**defaults, **fields})


@asynccontextmanager
async def serving(**overrides) -> AsyncIterator[generation_pb2_grpc.GenerationServiceStub]:
    settings = Settings(grpc_port=free_port(), **{"provider": "offline", **overrides})
    async with (
        running_app(create_app(settings)) as address,
        grpc.aio.insecure_channel(address) as channel,
    ):
        yield generation_pb2_grpc.GenerationServiceStub(channel)


@pytest.fixture(scope="module")
async def generation(test_database, test_stream):
    async with serving() as stub:
        yield stub


@pytest.fixture(scope="module")
async def db(test_database):
    database = Database(Settings())
    yield database
    await database.dispose()


@asynccontextmanager
async def usage_events(nats_url: str) -> AsyncIterator[asyncio.Queue[events_pb2.UsageRecorded]]:
    """UsageRecorded events published while the block runs."""
    queue: asyncio.Queue[events_pb2.UsageRecorded] = asyncio.Queue()
    nc = await nats.connect(nats_url, connect_timeout=2)

    async def received(message) -> None:
        queue.put_nowait(events_pb2.UsageRecorded.FromString(message.data))

    try:
        await nc.subscribe(subject_for(Settings(), "generation", "usage_recorded"), cb=received)
        yield queue
    finally:
        await nc.close()


async def event_for(queue: asyncio.Queue, generation_id: str) -> events_pb2.UsageRecorded:
    async with asyncio.timeout(10):
        while True:
            event = await queue.get()
            if event.generation_id == generation_id:
                return event


async def stored(db: Database, generation_id: str, timeout: float = 5.0) -> Generation:
    """The generation's row, once written (a cancelled call is recorded after it ends)."""
    async with asyncio.timeout(timeout):
        while True:
            async with db.session_scope() as session:
                row = await repository.get_generation(session, uuid.UUID(generation_id))
            if row is not None:
                return row
            await asyncio.sleep(0.05)


async def rows_for_story(db: Database, story_id: str) -> list[Generation]:
    async with db.session_scope() as session:
        return list(
            (await session.scalars(select(Generation).where(Generation.story_id == story_id))).all()
        )


async def test_generate_records_the_generation_and_publishes_usage(generation, db, nats_url):
    request = generate_request(want_title=True)
    async with usage_events(nats_url) as events:
        response = await generation.Generate(request)
        event = await event_for(events, response.generation_id)

    assert response.text and response.title and "Title:" not in response.text
    assert (response.provider, response.model, response.is_language_model) == (
        "offline",
        "offline",
        False,
    )
    assert response.usage.completion_tokens > len(response.text.split()) > 100
    assert response.usage.prompt_tokens > 0 and not response.usage.estimated
    assert response.usage.cost_usd == "0"

    row = await stored(db, response.generation_id)
    assert (row.user_id, row.story_id, row.reservation_id) == (
        request.user_id,
        request.story_id,
        request.reservation_id,
    )
    assert (row.kind, row.outcome, row.provider, row.model, row.error) == (
        "opening",
        "completed",
        "offline",
        "offline",
        None,
    )
    assert (row.prompt_tokens, row.completion_tokens, row.usage_estimated, row.cost_usd) == (
        response.usage.prompt_tokens,
        response.usage.completion_tokens,
        False,
        Decimal(0),
    )
    assert row.duration_ms >= 0

    assert uuid.UUID(event.event_id).version == 4
    assert (event.user_id, event.story_id, event.reservation_id) == (
        request.user_id,
        request.story_id,
        request.reservation_id,
    )
    assert (event.provider, event.model, event.cost_usd, event.usage_estimated) == (
        "offline",
        "offline",
        "0",
        False,
    )
    assert (event.prompt_tokens, event.completion_tokens) == (
        row.prompt_tokens,
        row.completion_tokens,
    )
    assert event.outcome == events_pb2.GENERATION_OUTCOME_COMPLETED
    assert event.occurred_at.ToDatetime().replace(microsecond=0) == row.created_at.replace(
        tzinfo=None, microsecond=0
    )


async def test_generate_is_deterministic_for_the_same_request(generation):
    request = generate_request()
    first, second = await generation.Generate(request), await generation.Generate(request)
    assert first.text == second.text
    assert first.generation_id != second.generation_id  # two calls, two records


async def test_generate_stream_yields_tokens_then_one_done(generation, db):
    request = generate_request(generation_pb2.GENERATION_KIND_ENDING)
    events = [event async for event in generation.GenerateStream(request)]

    *tokens, done = events
    assert len(tokens) > 100 and all(e.WhichOneof("event") == "token" for e in tokens)
    assert done.WhichOneof("event") == "done"
    response = done.done
    assert "".join(t.token.text for t in tokens).strip() == response.text
    assert response.text.endswith("The End.") and response.title == ""
    assert response.usage.completion_tokens > len(tokens)

    row = await stored(db, response.generation_id)
    assert (row.kind, row.outcome, row.completion_tokens) == (
        "ending",
        "completed",
        response.usage.completion_tokens,
    )


async def test_a_stream_cancelled_midway_is_still_recorded_as_cancelled(
    test_database, test_stream, db, nats_url
):
    story_id = str(uuid.uuid4())
    async with (
        serving(offline_token_delay_ms=20) as slow_generation,
        usage_events(nats_url) as events,
    ):
        call = slow_generation.GenerateStream(generate_request(story_id=story_id))
        first = await anext(aiter(call))
        assert first.WhichOneof("event") == "token"
        call.cancel()

        async with asyncio.timeout(5):
            while not (rows := await rows_for_story(db, story_id)):
                await asyncio.sleep(0.05)
        (row,) = rows
        event = await event_for(events, str(row.id))

    assert row.outcome == "cancelled"
    # What was produced before the caller left; far from the whole segment.
    assert 0 < row.completion_tokens < 100
    assert row.prompt_tokens > 0 and not row.usage_estimated
    assert event.outcome == events_pb2.GENERATION_OUTCOME_CANCELLED
    assert event.completion_tokens == row.completion_tokens


async def test_a_stream_cut_off_by_shutdown_is_recorded_and_published(
    test_database, test_stream, db, nats_url
):
    story_id = str(uuid.uuid4())
    async with usage_events(nats_url) as events:
        async with serving(
            offline_token_delay_ms=20, shutdown_grace_seconds=0.2
        ) as slow_generation:
            call = slow_generation.GenerateStream(generate_request(story_id=story_id))
            await anext(aiter(call))
        # The app has stopped: its last outbox pass published the record's event.
        (row,) = await rows_for_story(db, story_id)
        event = await event_for(events, str(row.id))
    assert row.outcome == "cancelled" and row.completion_tokens > 0
    assert event.outcome == events_pb2.GENERATION_OUTCOME_CANCELLED


async def test_a_stream_whose_consumer_stops_reading_is_recorded_as_cancelled(test_database, db):
    """The other way a stream is abandoned: the handler's generator is closed
    at a yield (GeneratorExit) rather than cancelled while it awaits."""
    prices = PriceTable.from_settings(Settings())
    recorder = GenerationRecorder(
        db, prices, subject_for(Settings(), "generation", "usage_recorded")
    )
    servicer = GenerationServicer(OfflineProvider(), recorder)
    request = generate_request()

    stream = servicer.GenerateStream(request, context=None)
    for _ in range(3):
        assert (await anext(stream)).WhichOneof("event") == "token"
    await stream.aclose()

    (row,) = await rows_for_story(db, request.story_id)
    assert row.outcome == "cancelled"
    assert 3 <= row.completion_tokens < 20


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"kind": generation_pb2.GENERATION_KIND_UNSPECIFIED}, "kind"),
        ({"user_id": ""}, "user_id"),
        ({"reservation_id": ""}, "reservation_id"),
        ({"direction": "x" * 4001}, "direction"),
    ],
)
async def test_invalid_requests_are_refused_and_not_recorded(generation, db, changes, detail):
    request = generate_request(**changes)
    for call in (generation.Generate(request), generation.GenerateStream(request).read()):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert detail in caught.value.details()
        assert error_reason(caught.value) == "invalid-argument"
    assert await rows_for_story(db, request.story_id) == []


@pytest.mark.parametrize("method", ["Generate", "GenerateStream"])
async def test_a_failed_provider_call_is_recorded_as_failed_and_reported_unavailable(
    test_database, test_stream, db, nats_url, fake_mistral, method
):
    request = generate_request(direction="fake-mistral:rate-limit")
    async with (
        serving(
            provider="mistral", mistral_api_key="sk-test", mistral_server_url=fake_mistral.url
        ) as stub,
        usage_events(nats_url) as events,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            if method == "Generate":
                await stub.Generate(request)
            else:
                [event async for event in stub.GenerateStream(request)]
        (row,) = await rows_for_story(db, request.story_id)
        event = await event_for(events, str(row.id))

    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "rate-limiting" in caught.value.details()
    assert error_reason(caught.value) == "upstream-rate-limited"
    assert (row.outcome, row.provider, row.model) == ("failed", "mistral", "mistral-small-latest")
    assert (row.prompt_tokens, row.completion_tokens, row.cost_usd) == (0, 0, Decimal(0))
    assert "rate-limiting" in row.error
    assert event.outcome == events_pb2.GENERATION_OUTCOME_FAILED
    assert (event.completion_tokens, event.cost_usd) == (0, "0")


async def test_mistral_usage_is_priced_from_the_table(test_database, test_stream, db, fake_mistral):
    async with serving(
        provider="mistral",
        mistral_api_key="sk-test",
        mistral_server_url=fake_mistral.url,
        prices={"mistral-small-latest": {"prompt": "1000", "completion": "2000"}},
    ) as stub:
        events = [
            event
            async for event in stub.GenerateStream(
                generate_request(direction="fake-mistral:no-usage")
            )
        ]
    response = events[-1].done

    assert (response.provider, response.is_language_model, response.usage.estimated) == (
        "mistral",
        True,
        True,
    )
    usage = response.usage
    expected = (usage.prompt_tokens * 1000 + usage.completion_tokens * 2000) / Decimal(10**6)
    assert Decimal(usage.cost_usd) == expected > 0
    row = await stored(db, response.generation_id)
    assert (row.cost_usd, row.usage_estimated) == (expected, True)



class TitleOnlyModel:
    """A language model that writes the title line it was asked for and then
    nothing: no segment at all."""

    name = "title-only"
    model = "title-only-1"
    is_language_model = True
    counts_tokens_exactly = False
    answer = "Title: Nothing Follows\n"
    usage = ReportedUsage(prompt_tokens=40, completion_tokens=4)

    async def stream(self, request):
        yield TextChunk(self.answer)
        yield self.usage

    async def complete(self, request) -> Completion:
        return Completion(self.answer, self.usage)

    def count_prompt_tokens(self, request) -> int:
        return self.usage.prompt_tokens

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize("method", ["Generate", "GenerateStream"])
async def test_a_call_that_writes_no_segment_is_a_failed_call_not_a_generation(
    test_database, test_stream, db, method
):
    """Billing counts a generation for every completed call: one that wrote no
    text must be reported as failed (its tokens paid, its reservation released)."""
    settings = Settings(grpc_port=free_port(), provider="offline")
    recorder = GenerationRecorder(
        db, PriceTable.from_settings(settings), subject_for(settings, "generation", "usage_recorded")
    )
    app = GrpcApp("generation", settings)
    app.add_servicer(
        generation_pb2_grpc.add_GenerationServiceServicer_to_server,
        GenerationServicer(TitleOnlyModel(), recorder),
        SERVICE_NAME,
    )
    app.add_worker(recorder)
    request = generate_request(want_title=True)
    async with running_app(app) as address, grpc.aio.insecure_channel(address) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            if method == "Generate":
                await stub.Generate(request)
            else:
                [event async for event in stub.GenerateStream(request)]

    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert error_reason(caught.value) == "upstream-error"
    (row,) = await rows_for_story(db, request.story_id)
    assert (row.outcome, row.prompt_tokens, row.completion_tokens) == ("failed", 40, 4)
    async with db.session_scope() as session:
        payloads = (await session.scalars(select(outbox.c.payload))).all()
    events = [events_pb2.UsageRecorded.FromString(payload) for payload in payloads]
    (event,) = [e for e in events if e.generation_id == str(row.id)]
    assert event.outcome == events_pb2.GENERATION_OUTCOME_FAILED
