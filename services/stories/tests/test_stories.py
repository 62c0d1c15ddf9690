"""The stories service over real gRPC, with the real billing and generation
services (offline provider) on a private Postgres database and NATS stream."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import grpc
import pytest
from fabula.billing.v1 import billing_pb2, billing_pb2_grpc
from fabula.stories.v1 import stories_pb2, stories_pb2_grpc
from fabula_billing.app import create_app as create_billing_app
from fabula_billing.settings import Settings as BillingSettings
from fabula_common.db import Database
from fabula_common.errors import StoryBusy, error_details, error_reason
from fabula_common.grpc_server import GrpcApp
from fabula_common.testing import free_port, running_app
from fabula_generation.app import create_app as create_generation_app
from fabula_generation.settings import Settings as GenerationSettings
from fabula_stories.app import create_app
from fabula_stories.settings import Settings
from fabula_stories.stories import service
from fabula_stories.stories.models import PendingGeneration, SegmentKind, Story
from fabula_stories.stories.servicer import StoriesServicer
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import async_sessionmaker

Stub = stories_pb2_grpc.StoriesServiceStub
FREE_PLAN_GENERATIONS = 5
OPENING = stories_pb2.SEGMENT_KIND_OPENING
CONTINUATION = stories_pb2.SEGMENT_KIND_CONTINUATION
ENDING = stories_pb2.SEGMENT_KIND_ENDING


def generation_app(billing_addr: str) -> GrpcApp:
    # A short pause between words keeps a continuation streaming long enough
    # for a client to leave midway.
    return create_generation_app(
        GenerationSettings(
            grpc_port=free_port(),
            billing_addr=billing_addr,
            provider="offline",
            offline_token_delay_ms=2,
        )
    )


@pytest.fixture(scope="module")
async def peers(test_database, test_stream) -> AsyncIterator[tuple[str, str]]:
    """Addresses of the running billing and generation services (generation
    meters every model call with billing; stories talks to generation only)."""
    billing = create_billing_app(BillingSettings(grpc_port=free_port()))
    async with running_app(billing) as billing_addr:
        # Started once billing's address is known.
        generation = generation_app(billing_addr)
        async with running_app(generation) as generation_addr:
            yield billing_addr, generation_addr


@asynccontextmanager
async def stories_service(generation_addr: str) -> AsyncIterator[Stub]:
    settings = Settings(grpc_port=free_port(), generation_addr=generation_addr)
    async with (
        running_app(create_app(settings)) as address,
        grpc.aio.insecure_channel(address) as channel,
    ):
        yield Stub(channel)


@pytest.fixture(scope="module")
async def stories(peers: tuple[str, str]) -> AsyncIterator[Stub]:
    async with stories_service(peers[1]) as stub:
        yield stub


@pytest.fixture(scope="module")
async def billing(peers: tuple[str, str]) -> AsyncIterator[billing_pb2_grpc.BillingServiceStub]:
    async with grpc.aio.insecure_channel(peers[0]) as channel:
        yield billing_pb2_grpc.BillingServiceStub(channel)


def new_user() -> str:
    return str(uuid.uuid4())


async def create(stories: Stub, user_id: str, **fields) -> stories_pb2.Story:
    fields.setdefault("genre", "mystery")
    return await stories.CreateStory(stories_pb2.CreateStoryRequest(user_id=user_id, **fields))


def create_stream(stories: Stub, user_id: str, **fields):
    fields.setdefault("genre", "mystery")
    return stories.CreateStoryStream(stories_pb2.CreateStoryRequest(user_id=user_id, **fields))


async def create_streamed(stories: Stub, user_id: str, **fields) -> list:
    return [event async for event in create_stream(stories, user_id, **fields)]


async def story_ids(stories: Stub, user_id: str) -> list[str]:
    page = await stories.ListStories(stories_pb2.ListStoriesRequest(user_id=user_id))
    return [story.id for story in page.items]


async def continue_story(
    stories: Stub, user_id: str, story_id: str, direction: str | None = None
) -> list[stories_pb2.ContinueStoryEvent]:
    request = stories_pb2.ContinueStoryRequest(
        user_id=user_id, story_id=story_id, direction=direction
    )
    return [event async for event in stories.ContinueStory(request)]


async def end(stories: Stub, user_id: str, story_id: str) -> stories_pb2.Story:
    return await stories.EndStory(stories_pb2.EndStoryRequest(user_id=user_id, story_id=story_id))


async def get(stories: Stub, user_id: str, story_id: str) -> stories_pb2.Story:
    return await stories.GetStory(stories_pb2.GetStoryRequest(user_id=user_id, story_id=story_id))


async def segment_pages(
    stories: Stub, user_id: str, story_id: str, limit: int, after_position: int = 0
) -> list[stories_pb2.ListSegmentsResponse]:
    """Every page of the story's segments from `after_position` on."""
    pages = []
    while True:
        page = await stories.ListSegments(
            stories_pb2.ListSegmentsRequest(
                user_id=user_id, story_id=story_id, after_position=after_position, limit=limit
            )
        )
        pages.append(page)
        if not page.HasField("next_after_position"):
            return pages
        after_position = page.next_after_position


async def refused(call: Awaitable) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call
    return error.value


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.05)


async def settled(
    billing: billing_pb2_grpc.BillingServiceStub, user_id: str, generations: int
) -> None:
    """Wait until billing charges the user with exactly `generations` settled
    generations and holds no reservation (usage settles asynchronously)."""

    async def check() -> bool:
        usage = await billing.GetUsage(billing_pb2.GetUsageRequest(user_id=user_id))
        return (usage.generations_used, usage.generations_reserved) == (generations, 0)

    await eventually(check)


async def generations_counted(billing: billing_pb2_grpc.BillingServiceStub, user_id: str) -> int:
    """Generations the user's plan is charged with: settled plus still reserved."""
    usage = await billing.GetUsage(billing_pb2.GetUsageRequest(user_id=user_id))
    return usage.generations_used + usage.generations_reserved


# --- Creating -------------------------------------------------------------------


async def test_a_story_keeps_its_given_title_and_starts_with_a_generated_opening(stories: Stub):
    user_id = new_user()

    story = await create(
        stories,
        user_id,
        genre="  fantasy ",
        title="The Ember Key",
        characters=["Maren", "Aldric"],
        opening_line="The bell rang thirteen times.",
    )

    assert uuid.UUID(story.id)
    assert story.user_id == user_id
    assert story.title == "The Ember Key"
    assert story.genre == "fantasy"
    assert list(story.characters) == ["Maren", "Aldric"]
    assert story.opening_line == "The bell rang thirteen times."
    assert not story.is_complete
    assert story.segment_count == 1
    [opening] = story.segments
    assert (opening.position, opening.kind) == (1, OPENING)
    assert opening.text.strip()
    assert (opening.provider, opening.is_language_model) == ("offline", False)
    assert opening.model
    assert await get(stories, user_id, story.id) == story


async def test_a_story_without_a_title_is_given_a_generated_one(stories: Stub):
    user_id = new_user()

    story = await create(stories, user_id, genre="science fiction")

    assert story.title.strip()
    assert not story.HasField("opening_line")
    assert list(story.characters) == []
    assert (await get(stories, user_id, story.id)).title == story.title


async def test_invalid_requests_name_the_field(stories: Stub):
    user_id = new_user()
    cases = [
        (create(stories, "someone", genre="mystery"), "user_id"),
        (create(stories, user_id, genre="  "), "genre"),
        (create(stories, user_id, title="t" * 201), "title"),
        (create(stories, user_id, characters=["c"] * 21), "characters"),
        (create(stories, user_id, opening_line="o" * 1001), "opening_line"),
        (
            stories.EndStory(
                stories_pb2.EndStoryRequest(
                    user_id=user_id, story_id=str(uuid.uuid4()), direction="d" * 4001
                )
            ),
            "direction",
        ),
        (stories.ListStories(stories_pb2.ListStoriesRequest(user_id=user_id, limit=101)), "limit"),
        (
            stories.ListStories(stories_pb2.ListStoriesRequest(user_id=user_id, cursor="%%%")),
            "cursor",
        ),
        (
            stories.GetStory(
                stories_pb2.GetStoryRequest(user_id=user_id, story_id=str(uuid.uuid4()), view=7)
            ),
            "view",
        ),
        (
            stories.ListSegments(
                stories_pb2.ListSegmentsRequest(
                    user_id=user_id, story_id=str(uuid.uuid4()), after_position=-1
                )
            ),
            "after_position",
        ),
        (
            stories.ListSegments(
                stories_pb2.ListSegmentsRequest(
                    user_id=user_id, story_id=str(uuid.uuid4()), limit=101
                )
            ),
            "limit",
        ),
    ]
    for call, field in cases:
        error = await refused(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert field in error.details()
        assert error_reason(error) == "invalid-argument"


async def test_creating_streamed_gives_the_openings_text_then_the_stored_story(
    stories: Stub, billing
):
    user_id = new_user()

    events = await create_streamed(
        stories, user_id, genre="fantasy", characters=["Maren"], opening_line="The bell rang."
    )

    *tokens, last = events
    assert len(tokens) > 1 and all(e.WhichOneof("event") == "token" for e in tokens)
    assert last.WhichOneof("event") == "story"
    story = last.story
    assert (story.genre, list(story.characters)) == ("fantasy", ["Maren"])
    assert story.title.strip()
    [opening] = story.segments
    assert (opening.position, opening.kind) == (1, OPENING)
    assert opening.text == "".join(e.token.text for e in tokens)
    # As CreateStory would answer it, stored once and billed once.
    assert await get(stories, user_id, story.id) == story
    assert await story_ids(stories, user_id) == [story.id]
    await settled(billing, user_id, generations=1)


async def test_a_streamed_create_is_stored_once_even_when_the_client_leaves_midway(
    stories: Stub, billing
):
    user_id = new_user()

    call = create_stream(stories, user_id)
    first = await call.read()
    assert first.WhichOneof("event") == "token"
    call.cancel()

    async def stored() -> bool:
        return len(await story_ids(stories, user_id)) == 1

    await eventually(stored)
    [story_id] = await story_ids(stories, user_id)
    [opening] = (await get(stories, user_id, story_id)).segments
    assert opening.text.startswith(first.token.text)
    assert len(opening.text) > len(first.token.text)
    await settled(billing, user_id, generations=1)


async def test_a_retried_streamed_create_yields_just_the_story(stories: Stub, billing):
    user_id, key = new_user(), f"retry-{uuid.uuid4()}"
    first = (await create_streamed(stories, user_id, idempotency_key=key))[-1].story

    [retried] = await create_streamed(stories, user_id, idempotency_key=key)

    assert retried.WhichOneof("event") == "story"
    assert retried.story == first
    # The same request as a CreateStory with the key: answered alike.
    assert await create(stories, user_id, idempotency_key=key) == first
    assert await story_ids(stories, user_id) == [first.id]
    await settled(billing, user_id, generations=1)


async def test_a_streamed_create_over_the_quota_is_refused_before_any_event(stories: Stub, billing):
    user_id = new_user()
    story = await create(stories, user_id)
    for _ in range(FREE_PLAN_GENERATIONS - 1):
        await continue_story(stories, user_id, story.id)

    call = create_stream(stories, user_id)
    error = await refused(call.read())

    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_reason(error) == "quota-exceeded"
    assert await story_ids(stories, user_id) == [story.id]
    await settled(billing, user_id, generations=FREE_PLAN_GENERATIONS)


# --- Continuing and ending --------------------------------------------------------


async def test_continuing_streams_the_text_then_the_stored_segment(stories: Stub):
    user_id = new_user()
    story = await create(stories, user_id)

    events = await continue_story(stories, user_id, story.id, direction="A stranger knocks.")

    *tokens, last = events
    assert tokens and all(e.WhichOneof("event") == "token" for e in tokens)
    assert last.WhichOneof("event") == "segment"
    segment = last.segment
    assert segment.text == "".join(e.token.text for e in tokens)
    assert (segment.position, segment.kind) == (2, CONTINUATION)
    stored = await get(stories, user_id, story.id)
    assert [s.position for s in stored.segments] == [1, 2]
    assert stored.segments[1] == segment
    assert stored.updated_at.ToDatetime() > story.updated_at.ToDatetime()


async def test_one_segment_is_written_at_a_time(stories: Stub, billing):
    user_id = new_user()
    story = await create(stories, user_id)

    results = await asyncio.gather(
        *(continue_story(stories, user_id, story.id) for _ in range(3)), return_exceptions=True
    )

    [written] = [r for r in results if not isinstance(r, BaseException)]
    assert written[-1].segment.position == 2
    busy = [r for r in results if isinstance(r, BaseException)]
    assert len(busy) == 2
    for error in busy:
        assert isinstance(error, grpc.aio.AioRpcError)
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "already being written" in error.details()
        # Worth retrying once the segment is written: the status says when.
        details = error_details(error)
        assert details.reason == "story-busy"
        assert details.metadata == {"story_id": story.id}
        assert 0 < details.retry_after <= 5
    stored = await get(stories, user_id, story.id)
    assert [s.position for s in stored.segments] == [1, 2]
    # Refused before any model call: only the opening and the one continuation are billed.
    await settled(billing, user_id, generations=2)
    # Once written, the story is free again.
    assert (await continue_story(stories, user_id, story.id))[-1].segment.position == 3


async def test_of_concurrent_endings_one_is_written_and_billed(stories: Stub, billing):
    user_id = new_user()
    story = await create(stories, user_id)

    results = await asyncio.gather(
        *(end(stories, user_id, story.id) for _ in range(5)), return_exceptions=True
    )

    [ended] = [r for r in results if not isinstance(r, BaseException)]
    assert ended.is_complete
    assert [(s.position, s.kind) for s in ended.segments] == [(1, OPENING), (2, ENDING)]
    refusals = [r for r in results if isinstance(r, BaseException)]
    assert len(refusals) == 4
    for error in refusals:
        assert isinstance(error, grpc.aio.AioRpcError)
        # Busy while the ending is written; complete if one arrived after it.
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_reason(error) in {"story-busy", "story-complete"}
    await settled(billing, user_id, generations=2)


async def test_an_ended_story_is_complete_and_cannot_be_extended(stories: Stub, billing):
    user_id = new_user()
    story = await create(stories, user_id)
    await continue_story(stories, user_id, story.id)

    ended = await end(stories, user_id, story.id)

    assert ended.is_complete
    assert [(s.position, s.kind) for s in ended.segments] == [
        (1, OPENING),
        (2, CONTINUATION),
        (3, ENDING),
    ]
    assert ended.segment_count == 3
    assert ended.updated_at.ToDatetime() > story.updated_at.ToDatetime()
    assert await get(stories, user_id, story.id) == ended

    counted = await generations_counted(billing, user_id)
    for call in (continue_story(stories, user_id, story.id), end(stories, user_id, story.id)):
        error = await refused(call)
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "story is complete" in error.details()
        # Final: which story, and no invitation to retry.
        details = error_details(error)
        assert details.reason == "story-complete"
        assert details.metadata == {"story_id": story.id}
        assert details.retry_after is None
    # Refused before any model call: the attempts cost the user nothing.
    assert await generations_counted(billing, user_id) == counted
    assert len((await get(stories, user_id, story.id)).segments) == 3


async def test_a_continuation_is_stored_even_when_the_client_leaves_midway(stories: Stub):
    user_id = new_user()
    story = await create(stories, user_id)

    call = stories.ContinueStory(
        stories_pb2.ContinueStoryRequest(user_id=user_id, story_id=story.id)
    )
    first = await call.read()
    assert first.WhichOneof("event") == "token"
    call.cancel()

    async def stored() -> bool:
        return len((await get(stories, user_id, story.id)).segments) == 2

    await eventually(stored)
    segment = (await get(stories, user_id, story.id)).segments[1]
    assert segment.kind == CONTINUATION
    assert segment.text.startswith(first.token.text)
    assert len(segment.text) > len(first.token.text)


# --- Reading, listing, deleting --------------------------------------------------


async def test_stories_are_listed_newest_first_page_by_page(stories: Stub):
    user_id = new_user()
    created = [await create(stories, user_id, title=f"Story {n}") for n in range(3)]
    await create(stories, new_user())  # someone else's

    pages, cursor = [], ""
    while True:
        page = await stories.ListStories(
            stories_pb2.ListStoriesRequest(user_id=user_id, limit=2, cursor=cursor)
        )
        pages.append(page)
        cursor = page.next_cursor
        if not cursor:
            break

    assert [len(p.items) for p in pages] == [2, 1]
    listed = [item for p in pages for item in p.items]
    assert [s.id for s in listed] == [s.id for s in reversed(created)]
    for item in listed:
        assert item.segment_count == 1
        assert list(item.segments) == []
        assert item.user_id == user_id
    everything = await stories.ListStories(stories_pb2.ListStoriesRequest(user_id=user_id))
    assert [s.id for s in everything.items] == [s.id for s in listed]
    assert everything.next_cursor == ""


async def test_the_basic_view_is_the_story_with_its_segment_count_but_no_segments(
    stories: Stub,
):
    user_id = new_user()
    story = await create(stories, user_id, title="Long Night")
    await continue_story(stories, user_id, story.id)
    full = await end(stories, user_id, story.id)

    basic = await stories.GetStory(
        stories_pb2.GetStoryRequest(
            user_id=user_id, story_id=story.id, view=stories_pb2.STORY_VIEW_BASIC
        )
    )

    assert list(basic.segments) == []
    assert basic.segment_count == 3
    without_segments = stories_pb2.Story()
    without_segments.CopyFrom(full)
    del without_segments.segments[:]
    assert basic == without_segments
    # Unspecified (callers that predate views) and FULL both carry every segment.
    explicit_full = await stories.GetStory(
        stories_pb2.GetStoryRequest(
            user_id=user_id, story_id=story.id, view=stories_pb2.STORY_VIEW_FULL
        )
    )
    assert explicit_full == await get(stories, user_id, story.id) == full


async def test_segments_are_read_in_story_order_page_by_page(stories: Stub):
    user_id = new_user()
    story = await create(stories, user_id)
    for _ in range(FREE_PLAN_GENERATIONS - 2):
        await continue_story(stories, user_id, story.id)
    full = await end(stories, user_id, story.id)
    assert full.segment_count == 5

    pages = await segment_pages(stories, user_id, story.id, limit=2)

    assert [[s.position for s in p.segments] for p in pages] == [[1, 2], [3, 4], [5]]
    assert [p.next_after_position for p in pages[:-1]] == [2, 4]
    assert [s for p in pages for s in p.segments] == list(full.segments)
    assert all(s.text for p in pages for s in p.segments)
    # A reader resumes from the last position it read; the default page holds all five.
    [resumed] = await segment_pages(stories, user_id, story.id, limit=10, after_position=3)
    assert [s.position for s in resumed.segments] == [4, 5]
    [everything] = await segment_pages(stories, user_id, story.id, limit=0)
    assert list(everything.segments) == list(full.segments)
    # Past the end: an empty last page, not an error.
    [past_end] = await segment_pages(stories, user_id, story.id, limit=2, after_position=5)
    assert list(past_end.segments) == []


async def test_the_basic_view_and_a_segment_page_load_only_what_they_return(stories: Stub):
    user_id = new_user()
    story = await create(stories, user_id)
    await continue_story(stories, user_id, story.id)
    await continue_story(stories, user_id, story.id)
    owner, story_id = uuid.UUID(user_id), uuid.UUID(story.id)
    db = Database(Settings())
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        async with db.session_scope() as session:
            found, count = await service.get_story_summary(session, owner, story_id)
        basic, statements[:] = list(statements), []
        async with db.session_scope() as session:
            page = await service.list_segments(session, owner, story_id, 1, 1)
        paged = list(statements)
    finally:
        await db.dispose()

    assert (str(found.id), count) == (story.id, 3)
    # One query, and no segment row read: the texts of a long story stay on disk.
    [basic_query] = [q for q in basic if q.startswith("SELECT")]
    assert "segments.text" not in basic_query and "count(*)" in basic_query
    # One query for one page: only the rows of that page, in order.
    assert [s.position for s in page.segments] == [2] and page.next_after_position == 2
    [page_query] = [q for q in paged if q.startswith("SELECT")]
    assert "segments.position >" in page_query and "ORDER BY stories.segments.position" in (
        page_query
    )
    assert "LIMIT" in page_query


def count_round_trips(db: Database) -> list[int]:
    """A one-item counter of the messages the pool's connections send to
    Postgres: each waits for an answer, so each is a round trip (a prepared
    statement's execution is one, a BEGIN or a COMMIT another)."""
    sent = [0]

    def on_connect(dbapi_connection, connection_record) -> None:
        transport = connection_record.driver_connection._transport
        write = transport.write

        def counted(data) -> None:
            sent[0] += 1
            write(data)

        transport.write = counted

    event.listen(db.engine.sync_engine.pool, "connect", on_connect)
    return sent


async def test_reading_a_story_is_one_round_trip_and_survives_a_database_restart(stories: Stub):
    user_id = new_user()
    story = await create(stories, user_id)
    await continue_story(stories, user_id, story.id)
    expected = await get(stories, user_id, story.id)
    db = Database(Settings())
    other = Database(Settings())
    servicer = StoriesServicer(db, writer=None)
    sent = count_round_trips(db)
    requests = [
        stories_pb2.GetStoryRequest(user_id=user_id, story_id=story.id, view=view)
        for view in (stories_pb2.STORY_VIEW_FULL, stories_pb2.STORY_VIEW_BASIC)
    ]
    try:
        for request in requests:
            await servicer.GetStory(request, None)  # connects, prepares the statement
            sent[0] = 0
            read = await servicer.GetStory(request, None)
            assert sent[0] <= 2, f"{sent[0]} round trips for a read"
        assert sent[0] == 1  # the pre-ping, BEGIN and COMMIT are gone

        # Postgres closes the pooled connection (as on a restart): it is
        # known closed, so the read takes a fresh one and the caller sees
        # nothing.
        async with db.engine.connect() as connection:
            pooled = await connection.scalar(text("SELECT pg_backend_pid()"))
        async with other.engine.connect() as admin:
            assert await admin.scalar(text(f"SELECT pg_terminate_backend({pooled})"))
        await asyncio.sleep(0.2)
        assert await servicer.GetStory(requests[0], None) == expected
    finally:
        await db.dispose()
        await other.dispose()
    assert read.segment_count == len(expected.segments) == 2


async def test_claiming_a_story_to_continue_it_is_one_round_trip(stories: Stub):
    """Claim and pending generation (with where its segment goes) in one
    statement, sent without BEGIN/COMMIT: the writing waits for one round trip."""
    user_id = new_user()
    warm, story = await create(stories, user_id), await create(stories, user_id)
    db = Database(Settings())
    sent = count_round_trips(db)
    autocommit = async_sessionmaker(db.engine.execution_options(isolation_level="AUTOCOMMIT"))

    async def claim(story_id: str, generation_id: uuid.UUID):
        async with autocommit() as session:
            return await service.start_writing(
                session,
                uuid.UUID(user_id),
                uuid.UUID(story_id),
                SegmentKind.continuation,
                generation_id,
                lease_seconds=1,
                owner="test",
            )

    try:
        await claim(warm.id, uuid.uuid4())  # connects, prepares the statement
        sent[0] = 0
        generation_id = uuid.uuid4()
        written = await claim(story.id, generation_id)
        assert sent[0] == 1
        # It goes after the head: the opening.
        assert written.parent_id == uuid.UUID(story.segments[0].id)
        async with db.session_scope() as session:
            pending = await session.get(PendingGeneration, generation_id)
            held = await session.get(Story, uuid.UUID(story.id))
        assert (pending.story_id, pending.kind, pending.owner, pending.parent_id) == (
            written.story_id,
            "continuation",
            "test",
            written.parent_id,
        )
        assert held.writing_generation_id == generation_id
        # Held: a second claim is refused and writes nothing.
        with pytest.raises(StoryBusy):
            await claim(story.id, uuid.uuid4())
    finally:
        await db.dispose()


async def test_another_users_story_is_not_found(stories: Stub, billing):
    owner, intruder = new_user(), new_user()
    story = await create(stories, owner)
    calls = [
        get(stories, intruder, story.id),
        stories.GetStory(
            stories_pb2.GetStoryRequest(
                user_id=intruder, story_id=story.id, view=stories_pb2.STORY_VIEW_BASIC
            )
        ),
        stories.ListSegments(stories_pb2.ListSegmentsRequest(user_id=intruder, story_id=story.id)),
        continue_story(stories, intruder, story.id),
        end(stories, intruder, story.id),
        stories.DeleteStory(stories_pb2.DeleteStoryRequest(user_id=intruder, story_id=story.id)),
    ]
    for call in calls:
        error = await refused(call)
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert error_reason(error) == "not-found"

    listed = await stories.ListStories(stories_pb2.ListStoriesRequest(user_id=intruder))
    assert list(listed.items) == []
    assert await generations_counted(billing, intruder) == 0
    assert (await get(stories, owner, story.id)).segment_count == 1


async def test_a_malformed_or_unknown_story_id_is_not_found(stories: Stub):
    user_id = new_user()
    for story_id in ("not-a-story-id", str(uuid.uuid4())):
        calls = [
            get(stories, user_id, story_id),
            stories.ListSegments(
                stories_pb2.ListSegmentsRequest(user_id=user_id, story_id=story_id)
            ),
        ]
        for call in calls:
            assert (await refused(call)).code() == grpc.StatusCode.NOT_FOUND, story_id


async def test_a_deleted_story_is_gone(stories: Stub):
    user_id = new_user()
    story = await create(stories, user_id)
    await continue_story(stories, user_id, story.id)
    delete = stories_pb2.DeleteStoryRequest(user_id=user_id, story_id=story.id)

    await stories.DeleteStory(delete)

    assert (await refused(get(stories, user_id, story.id))).code() == grpc.StatusCode.NOT_FOUND
    assert (await refused(stories.DeleteStory(delete))).code() == grpc.StatusCode.NOT_FOUND
    listed = await stories.ListStories(stories_pb2.ListStoriesRequest(user_id=user_id))
    assert list(listed.items) == []


async def test_a_story_may_be_deleted_while_a_segment_is_written(stories: Stub):
    user_id = new_user()
    story = await create(stories, user_id)
    call = stories.ContinueStory(
        stories_pb2.ContinueStoryRequest(user_id=user_id, story_id=story.id)
    )
    assert (await call.read()).WhichOneof("event") == "token"

    await stories.DeleteStory(stories_pb2.DeleteStoryRequest(user_id=user_id, story_id=story.id))

    # The segment being written has no story left to join.
    with pytest.raises(grpc.aio.AioRpcError) as error:
        while await call.read() is not grpc.aio.EOF:
            pass
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert (await refused(get(stories, user_id, story.id))).code() == grpc.StatusCode.NOT_FOUND


# --- Quota and failing peers --------------------------------------------------------


async def test_the_sixth_generation_on_the_free_plan_is_refused(stories: Stub):
    user_id = new_user()
    story = await create(stories, user_id)
    for _ in range(FREE_PLAN_GENERATIONS - 1):
        await continue_story(stories, user_id, story.id)

    calls = (
        continue_story(stories, user_id, story.id),
        # Refused for quota again, not as busy: the refusal freed the story.
        end(stories, user_id, story.id),
        create(stories, user_id),
    )
    for call in calls:
        error = await refused(call)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_reason(error) == "quota-exceeded"
    assert len((await get(stories, user_id, story.id)).segments) == FREE_PLAN_GENERATIONS


async def test_with_billing_down_writing_is_unavailable_at_once(test_database, test_stream):
    closed_port = f"127.0.0.1:{free_port()}"
    async with (
        running_app(generation_app(closed_port)) as generation_addr,
        stories_service(generation_addr) as stories,
    ):
        started = time.monotonic()
        error = await refused(create(stories, new_user()))

    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert time.monotonic() - started < 5


async def test_with_generation_down_writing_is_unavailable_and_costs_nothing(billing):
    closed_port = f"127.0.0.1:{free_port()}"
    user_id = new_user()
    async with stories_service(closed_port) as stories:
        error = await refused(create(stories, user_id))

    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert await generations_counted(billing, user_id) == 0


async def test_a_failed_model_call_frees_the_story_at_once(
    peers: tuple[str, str], stories: Stub, billing
):
    user_id = new_user()
    story = await create(stories, user_id)
    closed_port = f"127.0.0.1:{free_port()}"
    async with stories_service(closed_port) as without_generation:
        error = await refused(continue_story(without_generation, user_id, story.id))
    assert error.code() == grpc.StatusCode.UNAVAILABLE

    # Not refused as busy: the failed writer gave the story back.
    events = await continue_story(stories, user_id, story.id)

    assert events[-1].segment.position == 2
    await settled(billing, user_id, generations=2)
