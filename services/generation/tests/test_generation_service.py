"""The generation service over real gRPC, Postgres and NATS, metering its
calls with the real billing service."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

import grpc
import nats
import pytest
from fabula.billing.v1 import billing_pb2, billing_pb2_grpc
from fabula.generation.v1 import events_pb2, generation_pb2, generation_pb2_grpc
from fabula.stories.v1 import events_pb2 as stories_events
from fabula_billing.app import create_app as create_billing_app
from fabula_billing.settings import Settings as BillingSettings
from fabula_common.db import Database, utcnow
from fabula_common.errors import error_reason
from fabula_common.grpc_client import open_channel
from fabula_common.grpc_server import GrpcApp
from fabula_common.messaging.bus import subject_for
from fabula_common.messaging.headers import MSG_ID_HEADER
from fabula_common.money import format_usd, from_money, to_money
from fabula_common.testing import ConnectionCutter, free_port, running_app
from fabula_generation.app import SERVICE_NAME, create_app
from fabula_generation.database import outbox
from fabula_generation.generations import repository
from fabula_generation.generations.metering import Meter
from fabula_generation.generations.models import Generation
from fabula_generation.generations.pricing import PriceTable
from fabula_generation.generations.servicer import GenerationRecorder, GenerationServicer
from fabula_generation.generations.tasks import AbandonedGenerationSweeper
from fabula_generation.providers import Completion, OfflineProvider, ReportedUsage, TextChunk
from fabula_generation.settings import Settings
from sqlalchemy import delete, make_url, select

FREE_PLAN_GENERATIONS = 5
ZERO_USD = to_money(Decimal(0))


def story(story_id: str | None = None) -> generation_pb2.SubjectRef:
    return generation_pb2.SubjectRef(kind="story", id=story_id or str(uuid.uuid4()))


def generate_request(
    purpose=generation_pb2.PURPOSE_STORY_OPENING, **fields
) -> generation_pb2.GenerateRequest:
    defaults = dict(
        user_id=str(uuid.uuid4()),
        purpose=purpose,
        subject=story(),
        story=generation_pb2.StoryInputs(
            genre="fantasy",
            characters=["Mara, a lighthouse keeper", "Tom"],
            opening_line="The fog came in at noon.",
        ),
        direction="Mara finds the lost ship",
    )
    return generation_pb2.GenerateRequest(**{**defaults, **fields})


@pytest.fixture(scope="module")
async def billing_addr(test_database, test_stream) -> AsyncIterator[str]:
    """The real billing service: reserves, and settles from UsageRecorded."""
    async with running_app(create_billing_app(BillingSettings(grpc_port=free_port()))) as address:
        os.environ["BILLING_ADDR"] = address
        yield address
        del os.environ["BILLING_ADDR"]


@pytest.fixture(scope="module")
async def billing(billing_addr: str) -> AsyncIterator[billing_pb2_grpc.BillingServiceStub]:
    async with grpc.aio.insecure_channel(billing_addr) as channel:
        yield billing_pb2_grpc.BillingServiceStub(channel)


@pytest.fixture
async def meter(billing_addr: str) -> AsyncIterator[Meter]:
    channel = open_channel(billing_addr, 5.0)
    yield Meter(billing_pb2_grpc.BillingServiceStub(channel), release_timeout_seconds=2.0)
    await channel.close()


@asynccontextmanager
async def serving(**overrides) -> AsyncIterator[generation_pb2_grpc.GenerationServiceStub]:
    settings = Settings(grpc_port=free_port(), **{"provider": "offline", **overrides})
    async with (
        running_app(create_app(settings)) as address,
        grpc.aio.insecure_channel(address) as channel,
    ):
        yield generation_pb2_grpc.GenerationServiceStub(channel)


@pytest.fixture(scope="module")
async def generation(billing_addr):
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


async def rows_for_subject(db: Database, subject_id: str) -> list[Generation]:
    async with db.session_scope() as session:
        query = select(Generation).where(Generation.subject_id == subject_id)
        return list((await session.scalars(query)).all())


async def rows_for_user(db: Database, user_id: str) -> list[Generation]:
    async with db.session_scope() as session:
        query = select(Generation).where(Generation.user_id == user_id)
        return list((await session.scalars(query)).all())


async def usage_of(billing: billing_pb2_grpc.BillingServiceStub, user_id: str) -> tuple[int, int]:
    """(generations used, generations reserved) of the user's plan."""
    usage = await billing.GetUsage(billing_pb2.GetUsageRequest(user_id=user_id))
    return usage.generations_used, usage.generations_reserved


async def settles_at(
    billing: billing_pb2_grpc.BillingServiceStub, user_id: str, used: int, timeout: float = 10.0
) -> None:
    """Wait until billing counts `used` generations and holds no reservation
    for the user (usage settles asynchronously, from UsageRecorded)."""
    async with asyncio.timeout(timeout):
        while await usage_of(billing, user_id) != (used, 0):
            await asyncio.sleep(0.05)


async def test_generate_records_the_generation_and_publishes_usage(
    generation, db, nats_url, billing
):
    request = generate_request(want_title=True)
    async with usage_events(nats_url) as events:
        response = await generation.Generate(request)
        returned_at = dt.datetime.now(dt.timezone.utc)
        event = await event_for(events, response.generation_id)

    assert response.text and response.title and "Title:" not in response.text
    assert (response.provider, response.model, response.is_language_model) == (
        "offline",
        "offline",
        False,
    )
    assert response.usage.completion_tokens > len(response.text.split()) > 100
    assert response.usage.prompt_tokens > 0 and not response.usage.estimated
    assert response.usage.cost == ZERO_USD

    row = await stored(db, response.generation_id)
    assert (row.user_id, row.subject_kind, row.subject_id) == (
        request.user_id,
        "story",
        request.subject.id,
    )
    assert uuid.UUID(row.reservation_id)
    assert (row.purpose, row.outcome, row.provider, row.model, row.error) == (
        "story_opening",
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
    assert (event.user_id, event.subject, event.reservation_id) == (
        request.user_id,
        request.subject,
        row.reservation_id,
    )
    assert event.purpose == generation_pb2.PURPOSE_STORY_OPENING
    assert (event.provider, event.model, event.cost, event.usage_estimated) == (
        "offline",
        "offline",
        ZERO_USD,
        False,
    )
    assert (event.prompt_tokens, event.completion_tokens) == (
        row.prompt_tokens,
        row.completion_tokens,
    )
    assert event.outcome == events_pb2.GENERATION_OUTCOME_COMPLETED
    # The event happened when the generation finished: after it started, before
    # the call returned.
    assert row.created_at <= event.occurred_at.ToDatetime(dt.timezone.utc) <= returned_at
    # What a billing of the previous release reads, while one may still run.
    assert (event.story_id, event.cost_usd, response.usage.cost_usd) == (
        request.subject.id,
        "0",
        "0",
    )
    # Billed once, from the event: the reservation is settled.
    await settles_at(billing, request.user_id, used=1)


async def test_generate_is_deterministic_for_the_same_request(generation):
    request = generate_request()
    first, second = await generation.Generate(request), await generation.Generate(request)
    assert first.text == second.text
    assert first.generation_id != second.generation_id  # two calls, two records


async def test_generate_stream_yields_tokens_then_one_done(generation, db):
    request = generate_request(generation_pb2.PURPOSE_STORY_ENDING)
    events = [event async for event in generation.GenerateStream(request)]

    *tokens, done = events
    assert len(tokens) > 100 and all(e.WhichOneof("event") == "token" for e in tokens)
    assert done.WhichOneof("event") == "done"
    response = done.done
    assert "".join(t.token.text for t in tokens).strip() == response.text
    assert response.text.endswith("The End.") and response.title == ""
    assert response.usage.completion_tokens > len(tokens)

    row = await stored(db, response.generation_id)
    assert (row.purpose, row.outcome, row.completion_tokens) == (
        "story_ending",
        "completed",
        response.usage.completion_tokens,
    )


async def test_a_stream_cancelled_midway_is_still_recorded_as_cancelled(billing_addr, db, nats_url):
    story_id = str(uuid.uuid4())
    async with (
        serving(offline_token_delay_ms=20) as slow_generation,
        usage_events(nats_url) as events,
    ):
        call = slow_generation.GenerateStream(generate_request(subject=story(story_id)))
        first = await anext(aiter(call))
        assert first.WhichOneof("event") == "token"
        call.cancel()

        async with asyncio.timeout(5):
            # Written as started at once; its outcome once the handler has ended.
            while (row := (await rows_for_subject(db, story_id))[0]).outcome == "started":
                await asyncio.sleep(0.05)
        event = await event_for(events, str(row.id))

    assert row.outcome == "cancelled"
    # What was produced before the caller left; far from the whole segment.
    assert 0 < row.completion_tokens < 100
    assert row.prompt_tokens > 0 and not row.usage_estimated
    assert event.outcome == events_pb2.GENERATION_OUTCOME_CANCELLED
    assert event.completion_tokens == row.completion_tokens


async def test_a_stream_cut_off_by_shutdown_is_recorded_and_published(billing_addr, db, nats_url):
    story_id = str(uuid.uuid4())
    async with usage_events(nats_url) as events:
        async with serving(
            offline_token_delay_ms=20, shutdown_grace_seconds=0.2
        ) as slow_generation:
            call = slow_generation.GenerateStream(generate_request(subject=story(story_id)))
            await anext(aiter(call))
        # The app has stopped: its last outbox pass published the record's event.
        (row,) = await rows_for_subject(db, story_id)
        event = await event_for(events, str(row.id))
    assert row.outcome == "cancelled" and row.completion_tokens > 0
    assert event.outcome == events_pb2.GENERATION_OUTCOME_CANCELLED


async def test_a_stream_whose_consumer_stops_reading_is_recorded_as_cancelled(db, meter):
    """The other way a stream is abandoned: the handler's generator is closed
    at a yield (GeneratorExit) rather than cancelled while it awaits."""
    prices = PriceTable.from_settings(Settings())
    recorder = GenerationRecorder(
        db, prices, subject_for(Settings(), "generation", "usage_recorded"), meter
    )
    servicer = GenerationServicer(OfflineProvider(), recorder, meter)
    request = generate_request()

    stream = servicer.GenerateStream(request, context=None)
    for _ in range(3):
        assert (await anext(stream)).WhichOneof("event") == "token"
    await stream.aclose()

    (row,) = await rows_for_subject(db, request.subject.id)
    assert row.outcome == "cancelled"
    assert 3 <= row.completion_tokens < 20


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"purpose": generation_pb2.PURPOSE_UNSPECIFIED}, "purpose"),
        ({"user_id": ""}, "user_id"),
        ({"subject": generation_pb2.SubjectRef(id=str(uuid.uuid4()))}, "subject.kind"),
        ({"subject": generation_pb2.SubjectRef(kind="story", id="s" * 65)}, "subject.id"),
        ({"story": None}, "story inputs"),
        ({"direction": "x" * 4001}, "direction"),
        # A caller of the previous release: a kind instead of a purpose.
        (
            {
                "purpose": generation_pb2.PURPOSE_UNSPECIFIED,
                "kind": generation_pb2.GENERATION_KIND_OPENING,
                "story_id": "0b1c5e2a-54f4-4c39-9b7e-8f0f1b6c2d01",
                "reservation_id": "not-a-reservation",
            },
            "reservation_id",
        ),
    ],
)
async def test_invalid_requests_are_refused_and_cost_nothing(
    generation, db, billing, changes, detail
):
    request = generate_request(**changes)
    for call in (generation.Generate(request), generation.GenerateStream(request).read()):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert detail in caught.value.details()
        assert error_reason(caught.value) == "invalid-argument"
    assert await rows_for_user(db, request.user_id) == []
    if request.user_id:
        assert await usage_of(billing, request.user_id) == (0, 0)


def previous_release_request(
    user_id: str, story_id: str, kind, reservation_id: str = ""
) -> generation_pb2.GenerateRequest:
    """What a stories pod of the previous release sends: a kind, the story's
    id and the reservation it made with billing; no purpose or subject."""
    return generation_pb2.GenerateRequest(
        user_id=user_id,
        story_id=story_id,
        reservation_id=reservation_id,
        kind=kind,
        story=generation_pb2.StoryInputs(genre="fantasy", previous_segments=["It began."]),
        direction="the storm breaks",
    )


async def test_a_caller_of_the_previous_release_settles_its_own_reservation(
    generation, db, billing, nats_url
):
    user_id, story_id = str(uuid.uuid4()), str(uuid.uuid4())
    reservation = await billing.ReserveGeneration(
        billing_pb2.ReserveGenerationRequest(user_id=user_id)
    )
    request = previous_release_request(
        user_id,
        story_id,
        generation_pb2.GENERATION_KIND_CONTINUATION,
        reservation.reservation_id,
    )

    async with usage_events(nats_url) as events:
        *tokens, done = [event async for event in generation.GenerateStream(request)]
        event = await event_for(events, done.done.generation_id)

    assert tokens and done.done.text
    row = await stored(db, done.done.generation_id)
    assert (row.purpose, row.subject_kind, row.subject_id) == (
        "story_continuation",
        "story",
        story_id,
    )
    # The caller's reservation, not a second one, is what the usage settles.
    assert row.reservation_id == event.reservation_id == reservation.reservation_id
    assert (event.subject.kind, event.subject.id, event.story_id) == ("story", story_id, story_id)
    assert event.purpose == generation_pb2.PURPOSE_STORY_CONTINUATION
    await settles_at(billing, user_id, used=1)
    released = await billing.ReleaseReservation(
        billing_pb2.ReleaseReservationRequest(
            user_id=user_id, reservation_id=reservation.reservation_id
        )
    )
    assert released.released is False  # settled already

    # Without a reservation of its own, such a call is metered here as any other.
    unreserved = await generation.Generate(
        previous_release_request(user_id, story_id, generation_pb2.GENERATION_KIND_ENDING)
    )
    row = await stored(db, unreserved.generation_id)
    assert row.purpose == "story_ending"
    assert row.reservation_id not in ("", reservation.reservation_id)
    await settles_at(billing, user_id, used=2)


@pytest.mark.parametrize("method", ["Generate", "GenerateStream"])
async def test_a_failed_provider_call_is_recorded_as_failed_and_releases_its_reservation(
    billing, db, nats_url, fake_mistral, method
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
        (row,) = await rows_for_subject(db, request.subject.id)
        event = await event_for(events, str(row.id))

    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "rate-limiting" in caught.value.details()
    assert error_reason(caught.value) == "upstream-rate-limited"
    assert (row.outcome, row.provider, row.model) == ("failed", "mistral", "mistral-small-latest")
    assert (row.prompt_tokens, row.completion_tokens, row.cost_usd) == (0, 0, Decimal(0))
    assert "rate-limiting" in row.error
    assert event.outcome == events_pb2.GENERATION_OUTCOME_FAILED
    assert (event.completion_tokens, event.cost) == (0, ZERO_USD)
    # The quota held for the call is given back; nothing is counted.
    await settles_at(billing, request.user_id, used=0)


async def test_mistral_usage_is_priced_from_the_table(billing_addr, db, fake_mistral):
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
    assert usage.cost == to_money(expected)
    assert usage.cost_usd == format_usd(expected)  # for callers of the previous release
    assert expected > 0
    row = await stored(db, response.generation_id)
    assert (row.cost_usd, row.usage_estimated) == (expected, True)
    async with db.session_scope() as session:
        payloads = (await session.scalars(select(outbox.c.payload))).all()
    (event,) = [
        event
        for event in map(events_pb2.UsageRecorded.FromString, payloads)
        if event.generation_id == response.generation_id
    ]
    assert (event.cost, event.cost_usd) == (to_money(expected), format_usd(expected))


async def test_an_openai_compatible_server_writes_a_story_segment(billing_addr, db, fake_openai):
    async with serving(
        provider="openai", openai_base_url=fake_openai.base_url, openai_model="llama3.2"
    ) as stub:
        events = [
            event async for event in stub.GenerateStream(generate_request(want_title=True))
        ]
        completed = await stub.Generate(
            generate_request(purpose=generation_pb2.PURPOSE_STORY_CONTINUATION)
        )
    done = events[-1].done
    streamed = "".join(event.token.text for event in events[:-1])

    assert (done.provider, done.model, done.is_language_model) == ("openai", "llama3.2", True)
    assert done.title == "The Lantern Keeper" and "Mara lit the last lantern" in streamed
    assert not done.usage.estimated and done.usage.completion_tokens > 0
    assert completed.provider == "openai" and "Mara lit the last lantern" in completed.text
    row = await stored(db, done.generation_id)
    assert (row.outcome, row.provider, row.model) == ("completed", "openai", "llama3.2")
    assert [bool(sent.get("stream")) for sent in fake_openai.requests] == [True, False]


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
    billing, db, meter, method
):
    """Billing counts a generation for every completed call: one that wrote no
    text must be reported as failed (its tokens paid, its reservation released)."""
    settings = Settings(grpc_port=free_port(), provider="offline")
    recorder = GenerationRecorder(
        db,
        PriceTable.from_settings(settings),
        subject_for(settings, "generation", "usage_recorded"),
        meter,
    )
    app = GrpcApp("generation", settings)
    app.add_servicer(
        generation_pb2_grpc.add_GenerationServiceServicer_to_server,
        GenerationServicer(TitleOnlyModel(), recorder, meter),
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
    (row,) = await rows_for_subject(db, request.subject.id)
    assert (row.outcome, row.prompt_tokens, row.completion_tokens) == ("failed", 40, 4)
    async with db.session_scope() as session:
        payloads = (await session.scalars(select(outbox.c.payload))).all()
    events = [events_pb2.UsageRecorded.FromString(payload) for payload in payloads]
    (event,) = [e for e in events if e.generation_id == str(row.id)]
    assert event.outcome == events_pb2.GENERATION_OUTCOME_FAILED


# --- Metering -------------------------------------------------------------------


class CountingModel(OfflineProvider):
    """The offline provider, counting the model calls it is asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def compose(self, request) -> str:
        self.calls += 1
        return super().compose(request)


@asynccontextmanager
async def serving_model(
    model, db: Database, meter: Meter
) -> AsyncIterator[generation_pb2_grpc.GenerationServiceStub]:
    settings = Settings(grpc_port=free_port(), provider="offline")
    recorder = GenerationRecorder(
        db,
        PriceTable.from_settings(settings),
        subject_for(settings, "generation", "usage_recorded"),
        meter,
    )
    app = GrpcApp("generation", settings)
    app.add_servicer(
        generation_pb2_grpc.add_GenerationServiceServicer_to_server,
        GenerationServicer(model, recorder, meter),
        SERVICE_NAME,
    )
    app.add_worker(recorder)
    async with running_app(app) as address, grpc.aio.insecure_channel(address) as channel:
        yield generation_pb2_grpc.GenerationServiceStub(channel)


async def test_a_call_over_the_plan_is_refused_before_the_model_is_called(
    db, meter, billing, generation
):
    # `generation` runs the service's outbox relay, which publishes the usage
    # events these calls write (the app below has none): billing settles from them.
    model = CountingModel()
    user_id = str(uuid.uuid4())
    async with serving_model(model, db, meter) as stub:
        for _ in range(FREE_PLAN_GENERATIONS):
            await stub.Generate(generate_request(user_id=user_id))

        stream = stub.GenerateStream(generate_request(user_id=user_id))
        with pytest.raises(grpc.aio.AioRpcError) as streamed:
            await stream.read()  # the refusal, before any token
        with pytest.raises(grpc.aio.AioRpcError) as unary:
            await stub.Generate(generate_request(user_id=user_id))

    for caught in (streamed, unary):
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_reason(caught.value) == "quota-exceeded"
        assert "quota exceeded" in caught.value.details()
    assert model.calls == FREE_PLAN_GENERATIONS
    rows = await rows_for_user(db, user_id)
    # The refused calls are recorded too (started before billing was asked),
    # as failed calls that consumed nothing.
    assert sorted(row.outcome for row in rows) == ["completed"] * FREE_PLAN_GENERATIONS + [
        "failed"
    ] * 2
    for row in rows:
        if row.outcome == "failed":
            assert (row.prompt_tokens, row.completion_tokens, row.cost_usd) == (0, 0, 0)
            assert "quota exceeded" in row.error
    await settles_at(billing, user_id, used=FREE_PLAN_GENERATIONS)


async def test_concurrent_calls_at_the_quota_edge_never_exceed_the_plan(generation, db, billing):
    user_id = str(uuid.uuid4())
    await generation.Generate(generate_request(user_id=user_id))
    calls = [
        generation.Generate(generate_request(user_id=user_id)),
        *(collect(generation.GenerateStream(generate_request(user_id=user_id))) for _ in range(7)),
    ]

    results = await asyncio.gather(*calls, return_exceptions=True)

    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(results) - len(refused) == FREE_PLAN_GENERATIONS - 1
    for error in refused:
        assert isinstance(error, grpc.aio.AioRpcError), error
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    await settles_at(billing, user_id, used=FREE_PLAN_GENERATIONS)
    rows = await rows_for_user(db, user_id)
    assert len([row for row in rows if row.outcome == "completed"]) == FREE_PLAN_GENERATIONS
    assert len([row for row in rows if row.outcome == "failed"]) == len(refused)


async def collect(stream) -> list[generation_pb2.GenerateStreamEvent]:
    return [event async for event in stream]


async def test_with_billing_down_calls_are_unavailable_at_once_and_the_model_idle(db):
    model = CountingModel()
    closed = open_channel(f"127.0.0.1:{free_port()}", 5.0)
    meter = Meter(billing_pb2_grpc.BillingServiceStub(closed), release_timeout_seconds=1.0)
    request = generate_request()
    async with serving_model(model, db, meter) as stub:
        started = asyncio.get_running_loop().time()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Generate(request)
    await closed.close()

    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert asyncio.get_running_loop().time() - started < 5
    assert model.calls == 0
    # Recorded as a failed call that consumed nothing; its event releases
    # whatever billing may have granted before the line dropped.
    (row,) = await rows_for_user(db, request.user_id)
    assert (row.outcome, row.prompt_tokens, row.completion_tokens) == ("failed", 0, 0)


async def test_a_call_that_cannot_be_recorded_gives_its_reservation_back(meter, billing):
    """No usage event will come for it, so the generation service releases the
    reservation itself."""
    unreachable = Database(
        Settings(database_url=f"postgresql://nobody@127.0.0.1:{free_port()}/nothing")
    )
    request = generate_request()
    async with serving_model(OfflineProvider(), unreachable, meter) as stub:
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Generate(request)
    await unreachable.dispose()

    assert await usage_of(billing, request.user_id) == (0, 0)


# --- Generation ids, delivery confirmed by the owner, crashes ---------------------


async def publish_delivered(nats_url: str, user_id: str, generation_id: str) -> None:
    """What stories' outbox relay publishes once it stored the segment."""
    event = stories_events.GenerationDelivered(
        event_id=str(uuid.uuid4()),
        generation_id=generation_id,
        user_id=user_id,
        story_id=str(uuid.uuid4()),
        segment_id=str(uuid.uuid4()),
    )
    nc = await nats.connect(nats_url, connect_timeout=2)
    try:
        await nc.jetstream().publish(
            subject_for(Settings(), "stories", "generation_delivered"),
            event.SerializeToString(),
            headers={MSG_ID_HEADER: event.event_id},
        )
    finally:
        await nc.close()


async def test_a_refused_call_is_recorded_failed_with_no_usage_and_its_event(
    generation, db, billing, nats_url
):
    """The generation is written before billing is asked: a refusal leaves a
    failed record that consumed nothing, and its usage event still goes out."""
    user_id, generation_id = str(uuid.uuid4()), str(uuid.uuid4())
    for _ in range(FREE_PLAN_GENERATIONS):
        await billing.ReserveGeneration(billing_pb2.ReserveGenerationRequest(user_id=user_id))

    async with usage_events(nats_url) as events:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await generation.Generate(
                generate_request(user_id=user_id, generation_id=generation_id)
            )
        event = await event_for(events, generation_id)

    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    row = await stored(db, generation_id)
    assert (row.outcome, row.prompt_tokens, row.completion_tokens, row.cost_usd) == (
        "failed",
        0,
        0,
        Decimal(0),
    )
    assert row.reservation_id == generation_id
    assert (event.outcome, event.completion_tokens, event.reservation_id) == (
        events_pb2.GENERATION_OUTCOME_FAILED,
        0,
        generation_id,
    )
    assert await usage_of(billing, user_id) == (0, FREE_PLAN_GENERATIONS)


async def test_a_repeated_generation_id_is_already_exists_and_reserves_nothing_more(
    generation, db, billing
):
    user_id, generation_id = str(uuid.uuid4()), str(uuid.uuid4())
    request = generate_request(user_id=user_id, generation_id=generation_id)
    first = await generation.Generate(request)
    assert first.generation_id == generation_id
    await settles_at(billing, user_id, used=1)

    for call in (generation.Generate(request), generation.GenerateStream(request).read()):
        with pytest.raises(grpc.aio.AioRpcError) as again:
            await call
        assert again.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert error_reason(again.value) == "already-exists"
    assert await usage_of(billing, user_id) == (1, 0)
    (row,) = await rows_for_user(db, user_id)
    assert row.outcome == "completed"

    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await generation.Generate(generate_request(generation_id="not-a-uuid"))
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_call_confirmed_by_its_owner_counts_only_once_delivered(
    generation, db, billing, nats_url
):
    user_id, generation_id = str(uuid.uuid4()), str(uuid.uuid4())
    async with usage_events(nats_url) as events:
        response = await generation.Generate(
            generate_request(
                user_id=user_id,
                generation_id=generation_id,
                delivery=generation_pb2.DELIVERY_CONFIRMED_BY_OWNER,
            )
        )
        event = await event_for(events, generation_id)
    assert response.generation_id == generation_id
    assert event.delivery == generation_pb2.DELIVERY_CONFIRMED_BY_OWNER
    assert (await stored(db, generation_id)).delivery == "confirmed_by_owner"

    # Its usage is paid, but the generation is still held, not counted ...
    await asyncio.sleep(0.5)
    assert await usage_of(billing, user_id) == (0, 1)
    # ... until stories reports the segment stored.
    await publish_delivered(nats_url, user_id, generation_id)
    await settles_at(billing, user_id, used=1)


async def test_a_generation_abandoned_by_a_dead_process_is_swept_with_its_usage_event(
    generation, db, billing, nats_url
):
    """The process died mid-call: its row stays started, with the quota held.
    Once no call can still be running, the sweeper settles it as failed with
    the prompt's estimated usage, and its event releases billing's holds."""
    user_id, generation_id = str(uuid.uuid4()), uuid.uuid4()
    await billing.ReserveGeneration(
        billing_pb2.ReserveGenerationRequest(user_id=user_id, reservation_id=str(generation_id))
    )
    settings = Settings()
    started_long_ago = utcnow() - dt.timedelta(seconds=settings.abandon_after_seconds + 1)
    async with db.session_scope() as session:
        await repository.add_started_generation(
            session,
            dict(
                id=generation_id,
                user_id=user_id,
                purpose="story_continuation",
                subject_kind="story",
                subject_id=str(uuid.uuid4()),
                reservation_id=str(generation_id),
                provider="mistral",
                model="mistral-small-latest",
                prompt_tokens=1200,
                completion_tokens=0,
                usage_estimated=True,
                cost_usd=Decimal("0.00012"),
                duration_ms=0,
                delivery="confirmed_by_owner",
                error=None,
                created_at=started_long_ago,
            ),
        )
        # A call started just now is still someone's: left alone.
        running = uuid.uuid4()
        await repository.add_started_generation(
            session,
            started_generation(running, user_id, owner="another-instance", created_at=utcnow()),
        )
    sweeper = AbandonedGenerationSweeper(
        db,
        subject_for(settings, "generation", "usage_recorded"),
        interval_seconds=1,
        abandon_after_seconds=settings.abandon_after_seconds,
    )

    async with usage_events(nats_url) as events:
        assert await sweeper.sweep() == 1
        # The module's generation app relays the outbox.
        event = await event_for(events, str(generation_id))

    row = await stored(db, str(generation_id))
    assert (row.outcome, row.prompt_tokens, row.usage_estimated) == ("failed", 1200, True)
    assert "abandoned" in row.error
    assert (await stored(db, str(running))).outcome == "started"
    assert event.outcome == events_pb2.GENERATION_OUTCOME_FAILED
    assert (event.prompt_tokens, event.usage_estimated) == (1200, True)
    assert event.delivery == generation_pb2.DELIVERY_CONFIRMED_BY_OWNER
    # Both holds released; the estimated tokens are paid.
    await settles_at(billing, user_id, used=0)
    summary = await billing.GetUsage(billing_pb2.GetUsageRequest(user_id=user_id))
    assert format_usd(from_money(summary.cost_used)) == "0.00012"
    assert await sweeper.sweep() == 0  # settled once
    async with db.session_scope() as session:
        await session.execute(delete(Generation).where(Generation.id == running))


# --- Recovery: a restarted instance, a database blip -------------------------------


def started_generation(
    generation_id: uuid.UUID, user_id: str, owner: str, created_at: dt.datetime
) -> dict:
    return dict(
        id=generation_id,
        user_id=user_id,
        purpose="story_continuation",
        subject_kind="story",
        subject_id=str(uuid.uuid4()),
        reservation_id=str(generation_id),
        provider="offline",
        model="offline",
        prompt_tokens=50,
        completion_tokens=0,
        usage_estimated=True,
        cost_usd=Decimal(0),
        duration_ms=0,
        delivery="on_completion",
        owner=owner,
        error=None,
        created_at=created_at,
    )


async def test_a_restarted_instance_settles_what_its_previous_run_left_started(
    billing, db, nats_url
):
    """Killed mid-call and started again under the same name (a container
    restarted in place): its calls cannot be running any more, so they are
    settled at once, not after the abandon time. Another instance's are left
    to that instance, or to the sweeper."""
    user_id, mine, theirs = str(uuid.uuid4()), uuid.uuid4(), uuid.uuid4()
    instance = f"generation-{uuid.uuid4().hex[:8]}"
    a_moment_ago = utcnow() - dt.timedelta(seconds=5)
    for generation_id, owner in ((mine, instance), (theirs, "another-instance")):
        await billing.ReserveGeneration(
            billing_pb2.ReserveGenerationRequest(
                user_id=user_id, reservation_id=str(generation_id)
            )
        )
        async with db.session_scope() as session:
            await repository.add_started_generation(
                session, started_generation(generation_id, user_id, owner, a_moment_ago)
            )
    assert await usage_of(billing, user_id) == (0, 2)

    async with usage_events(nats_url) as events:
        started = asyncio.get_running_loop().time()
        async with serving(instance_name=instance) as restarted:
            event = await event_for(events, str(mine))
            settled_in = asyncio.get_running_loop().time() - started
            # This run's own calls are its own to finish.
            response = await restarted.Generate(generate_request(user_id=user_id))

    assert settled_in < 5 < Settings().abandon_after_seconds
    row = await stored(db, str(mine))
    assert (row.outcome, row.prompt_tokens, row.usage_estimated) == ("failed", 50, True)
    assert "abandoned" in row.error
    assert event.outcome == events_pb2.GENERATION_OUTCOME_FAILED
    new = await stored(db, response.generation_id)
    assert (new.outcome, new.owner) == ("completed", instance)
    assert (await stored(db, str(theirs))).outcome == "started"
    # The restarted instance's abandoned call is released, the new one counts,
    # the other instance's call is still held.
    await settles_at_held(billing, user_id, used=1, reserved=1)
    async with db.session_scope() as session:
        await session.execute(delete(Generation).where(Generation.id == theirs))


async def settles_at_held(billing, user_id: str, used: int, reserved: int) -> None:
    async with asyncio.timeout(10):
        while await usage_of(billing, user_id) != (used, reserved):
            await asyncio.sleep(0.05)


async def test_an_outcome_the_database_could_not_take_is_recorded_once_it_is_back(
    billing, db, nats_url
):
    """The database goes away while a stream runs: the caller gets its error
    at once, and the outcome (failed: the caller has no text) with its usage
    event is written within seconds of the database's return, not left for
    the sweeper."""
    url = make_url(Settings().database_url)
    cutter = ConnectionCutter(url.host or "127.0.0.1", url.port or 5432)
    proxied = url.set(host="127.0.0.1", port=await cutter.start())
    request = generate_request()
    try:
        async with (
            usage_events(nats_url) as events,
            serving(
                database_url=proxied.render_as_string(hide_password=False),
                offline_token_delay_ms=10,
            ) as generation,
        ):
            call = generation.GenerateStream(request)
            assert (await call.read()).WhichOneof("event") == "token"
            cutter.cut()
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                while await call.read() != grpc.aio.EOF:
                    pass
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            (row,) = await rows_for_subject(db, request.subject.id)
            assert row.outcome == "started"

            await asyncio.sleep(1.0)
            cutter.restore()
            restored = asyncio.get_running_loop().time()
            async with asyncio.timeout(5):
                while (await stored(db, str(row.id))).outcome == "started":
                    await asyncio.sleep(0.05)
            recorded_in = asyncio.get_running_loop().time() - restored
            event = await event_for(events, str(row.id))
    finally:
        await cutter.close()

    assert recorded_in < 3
    row = await stored(db, str(row.id))
    assert row.outcome == "failed" and row.completion_tokens > 0
    assert "could not be recorded" in row.error
    assert (event.outcome, event.completion_tokens) == (
        events_pb2.GENERATION_OUTCOME_FAILED,
        row.completion_tokens,
    )
    # Its tokens are paid, the generation is not counted, nothing stays held.
    await settles_at(billing, request.user_id, used=0)


async def test_lookup_tells_what_the_record_says_of_each_id(generation, db, billing):
    """What billing's expiry asks before giving quota back."""
    user_id = str(uuid.uuid4())
    finished = (await generation.Generate(generate_request(user_id=user_id))).generation_id
    running = uuid.uuid4()
    async with db.session_scope() as session:
        await repository.add_started_generation(
            session, started_generation(running, user_id, "another-instance", utcnow())
        )
    # A caller of the previous release reserved under its own id.
    reservation_id = str(uuid.uuid4())
    legacy = await generation.Generate(
        previous_release_request(
            user_id, str(uuid.uuid4()), generation_pb2.GENERATION_KIND_OPENING, reservation_id
        )
    )
    never, not_a_uuid = str(uuid.uuid4()), "not-a-uuid"
    ids = [finished, str(running), reservation_id, never, not_a_uuid]

    reply = await generation.LookupGenerations(generation_pb2.LookupGenerationsRequest(ids=ids))

    assert [(found.id, found.state) for found in reply.generations] == [
        (finished, generation_pb2.GENERATION_STATE_FINISHED),
        (str(running), generation_pb2.GENERATION_STATE_STARTED),
        (reservation_id, generation_pb2.GENERATION_STATE_FINISHED),
        (never, generation_pb2.GENERATION_STATE_UNKNOWN),
        (not_a_uuid, generation_pb2.GENERATION_STATE_UNKNOWN),
    ]
    assert legacy.generation_id != reservation_id
    with pytest.raises(grpc.aio.AioRpcError) as too_many:
        await generation.LookupGenerations(
            generation_pb2.LookupGenerationsRequest(ids=[never] * 1001)
        )
    assert too_many.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    async with db.session_scope() as session:
        await session.execute(delete(Generation).where(Generation.id == running))


# --- RenderPrompt -------------------------------------------------------------------


async def test_render_prompt_shows_the_messages_generate_would_send_and_costs_nothing(
    generation, db, billing
):
    request = generate_request(
        generation_pb2.PURPOSE_STORY_CONTINUATION,
        story=generation_pb2.StoryInputs(
            genre="fantasy",
            characters=["Mara"],
            previous_segments=["The fog came in at noon."],
            memory="Mara cannot swim.",
            lore=["The ferry leaves at dawn."],
            authors_note="Keep it eerie.",
        ),
    )

    rendered = await generation.RenderPrompt(request)

    [system, user] = rendered.messages
    assert (system.role, user.role) == ("system", "user")
    for part in ("Mara cannot swim.", "- The ferry leaves at dawn.", "[Author's note: Keep it eerie.]",
                 "The fog came in at noon.", "Mara finds the lost ship"):
        assert part in user.content
    assert rendered.prompt_tokens == (len(system.content) + 1 + len(user.content) + 3) // 4
    # Nothing reserved, recorded or billed.
    assert await rows_for_user(db, request.user_id) == []
    assert await usage_of(billing, request.user_id) == (0, 0)


async def test_render_prompt_refuses_what_generate_refuses(generation):
    request = generate_request(
        story=generation_pb2.StoryInputs(genre="fantasy", memory="x" * 10_001)
    )

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await generation.RenderPrompt(request)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "story.memory" in caught.value.details()
