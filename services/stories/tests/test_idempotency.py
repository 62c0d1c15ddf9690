"""Idempotency-Keys on the calls that write a segment and so charge a
generation (CreateStory, ContinueStory, EndStory): a retry after a lost answer
gets the first answer and costs nothing more, whatever the timing.

Real billing, generation and stories services over gRPC on the session's
private database and NATS stream; billing's usage tells what was charged."""

from __future__ import annotations

import asyncio
import datetime as dt
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
from fabula_common.errors import error_details, error_reason
from fabula_common.testing import free_port, running_app
from fabula_generation.app import create_app as create_generation_app
from fabula_generation.settings import Settings as GenerationSettings
from fabula_stories.app import create_app
from fabula_stories.idempotency.models import IdempotencyKey
from fabula_stories.idempotency.tasks import ExpiredKeysPurger
from fabula_stories.settings import Settings
from sqlalchemy import func, select, update

Stub = stories_pb2_grpc.StoriesServiceStub
# Pause between words of the slow generator: a continuation streams for
# seconds, long enough to retry while it runs.
SLOW_TOKEN_MS = 30


def generation_app(billing_addr: str, token_delay_ms: int):
    return create_generation_app(
        GenerationSettings(
            grpc_port=free_port(),
            billing_addr=billing_addr,
            provider="offline",
            offline_token_delay_ms=token_delay_ms,
        )
    )


@pytest.fixture(scope="module")
async def peers(test_database, test_stream) -> AsyncIterator[tuple[str, str, str]]:
    """Addresses of billing, a quick and a slow generation service."""
    billing = create_billing_app(BillingSettings(grpc_port=free_port()))
    async with running_app(billing) as billing_addr:
        quick, slow = generation_app(billing_addr, 2), generation_app(billing_addr, SLOW_TOKEN_MS)
        async with running_app(quick) as quick_addr, running_app(slow) as slow_addr:
            yield billing_addr, quick_addr, slow_addr


@asynccontextmanager
async def stories_service(generation_addr: str) -> AsyncIterator[Stub]:
    settings = Settings(grpc_port=free_port(), generation_addr=generation_addr)
    async with (
        running_app(create_app(settings)) as address,
        grpc.aio.insecure_channel(address) as channel,
    ):
        yield Stub(channel)


@pytest.fixture(scope="module")
async def stories(peers) -> AsyncIterator[Stub]:
    async with stories_service(peers[1]) as stub:
        yield stub


@pytest.fixture(scope="module")
async def slow_stories(peers) -> AsyncIterator[Stub]:
    async with stories_service(peers[2]) as stub:
        yield stub


@pytest.fixture(scope="module")
async def billing(peers) -> AsyncIterator[billing_pb2_grpc.BillingServiceStub]:
    async with grpc.aio.insecure_channel(peers[0]) as channel:
        yield billing_pb2_grpc.BillingServiceStub(channel)


@pytest.fixture
async def db(test_database) -> AsyncIterator[Database]:
    database = Database(Settings())
    yield database
    await database.dispose()


# --- Helpers --------------------------------------------------------------------------


def new_user() -> str:
    return str(uuid.uuid4())


def new_key() -> str:
    return f"retry-{uuid.uuid4()}"


async def create(stories: Stub, user_id: str, key: str = "", **fields) -> stories_pb2.Story:
    fields.setdefault("genre", "mystery")
    return await stories.CreateStory(
        stories_pb2.CreateStoryRequest(user_id=user_id, idempotency_key=key, **fields)
    )


def continue_call(stories: Stub, user_id: str, story_id: str, key: str = "", **fields):
    return stories.ContinueStory(
        stories_pb2.ContinueStoryRequest(
            user_id=user_id, story_id=story_id, idempotency_key=key, **fields
        )
    )


async def continue_story(
    stories: Stub, user_id: str, story_id: str, key: str = "", **fields
) -> list[stories_pb2.ContinueStoryEvent]:
    return [event async for event in continue_call(stories, user_id, story_id, key, **fields)]


async def end(stories: Stub, user_id: str, story_id: str, key: str = "") -> stories_pb2.Story:
    return await stories.EndStory(
        stories_pb2.EndStoryRequest(user_id=user_id, story_id=story_id, idempotency_key=key)
    )


async def story_count(stories: Stub, user_id: str) -> int:
    page = await stories.ListStories(stories_pb2.ListStoriesRequest(user_id=user_id, limit=100))
    return len(page.items)


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


async def usage(billing, user_id: str) -> tuple[int, int]:
    reply = await billing.GetUsage(billing_pb2.GetUsageRequest(user_id=user_id))
    return reply.generations_used, reply.generations_reserved


async def charged_exactly(billing, user_id: str, generations: int) -> None:
    """Billing counts `generations` for the user, settled, and holds nothing
    more: a second model call would still hold a reservation right after
    the call that made it answered."""
    assert sum(await usage(billing, user_id)) == generations

    async def settled() -> bool:
        return await usage(billing, user_id) == (generations, 0)

    await eventually(settled)


# --- Create -----------------------------------------------------------------------------


async def test_a_retried_create_returns_the_same_story_and_charges_once(stories: Stub, billing):
    user_id, key = new_user(), new_key()
    first = await create(stories, user_id, key, title="The Ember Key")
    await charged_exactly(billing, user_id, 1)

    retried = await create(stories, user_id, key, title="The Ember Key")

    assert retried == first
    await charged_exactly(billing, user_id, 1)
    assert await story_count(stories, user_id) == 1


async def test_a_create_retry_answers_the_story_as_it_is_now(stories: Stub, billing):
    user_id, key = new_user(), new_key()
    first = await create(stories, user_id, key)
    await continue_story(stories, user_id, first.id)

    retried = await create(stories, user_id, key)

    assert retried.id == first.id
    assert [s.position for s in retried.segments] == [1, 2]
    await charged_exactly(billing, user_id, 2)


async def test_concurrent_creates_with_one_key_make_one_story(stories: Stub, billing):
    user_id, key = new_user(), new_key()

    results = await asyncio.gather(
        *(create(stories, user_id, key) for _ in range(6)), return_exceptions=True
    )

    made = {story.id for story in results if isinstance(story, stories_pb2.Story)}
    assert len(made) == 1
    for result in results:
        if isinstance(result, grpc.aio.AioRpcError):
            assert result.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert error_reason(result) == "idempotency-key-in-progress"
            assert error_details(result).retry_after is not None
    assert await story_count(stories, user_id) == 1
    await charged_exactly(billing, user_id, 1)
    # Once the first has finished, every retry gets its answer.
    assert (await create(stories, user_id, key)).id in made


async def test_the_key_with_another_request_is_refused(stories: Stub, billing):
    user_id, key = new_user(), new_key()
    story = await create(stories, user_id, key, genre="noir")

    calls = (
        create(stories, user_id, key, genre="fantasy"),
        create(stories, user_id, key, genre="noir", title="Another"),
        # The same key for another operation is another request too.
        continue_story(stories, user_id, story.id, key),
    )
    for call in calls:
        error = await refused(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_reason(error) == "idempotency-key-reused"
    await charged_exactly(billing, user_id, 1)


async def test_keys_are_per_user(stories: Stub, billing):
    key = new_key()
    mine, theirs = new_user(), new_user()

    my_story = await create(stories, mine, key)
    their_story = await create(stories, theirs, key, genre="western")

    assert my_story.id != their_story.id
    assert their_story.genre == "western"
    await charged_exactly(billing, theirs, 1)


async def test_an_overlong_key_is_invalid(stories: Stub):
    error = await refused(create(stories, new_user(), "k" * 256))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(error) == "invalid-argument"
    assert error.details().startswith("idempotency_key:")


async def test_a_key_is_free_again_after_its_request_failed(peers, stories: Stub, billing):
    user_id, key = new_user(), new_key()
    async with stories_service(f"127.0.0.1:{free_port()}") as without_generation:
        error = await refused(create(without_generation, user_id, key))
        assert error.code() == grpc.StatusCode.UNAVAILABLE

    story = await create(stories, user_id, key)

    assert (await create(stories, user_id, key)).id == story.id
    assert await story_count(stories, user_id) == 1
    await charged_exactly(billing, user_id, 1)


async def test_an_expired_key_is_purged_and_free_again(stories: Stub, billing, db: Database):
    user_id, key = new_user(), new_key()
    first = await create(stories, user_id, key)
    async with db.session_scope() as session:
        await session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.user_id == uuid.UUID(user_id))
            .values(expires_at=func.now() - dt.timedelta(seconds=1))
        )

    assert await ExpiredKeysPurger(db, interval_seconds=60).purge_once() >= 1
    async with db.session_scope() as session:
        query = select(func.count()).where(IdempotencyKey.user_id == uuid.UUID(user_id))
        assert await session.scalar(query) == 0
    second = await create(stories, user_id, key)

    assert second.id != first.id
    await charged_exactly(billing, user_id, 2)


# --- Continue and end -----------------------------------------------------------------------


async def test_a_retried_continue_returns_just_the_stored_segment(stories: Stub, billing):
    user_id, key = new_user(), new_key()
    story = await create(stories, user_id)
    first = await continue_story(stories, user_id, story.id, key, direction="a storm")
    await charged_exactly(billing, user_id, 2)

    retried = await continue_story(stories, user_id, story.id, key, direction="a storm")

    # No text deltas again: the segment as it was stored.
    assert [event.WhichOneof("event") for event in retried] == ["segment"]
    assert retried[0].segment == first[-1].segment
    await charged_exactly(billing, user_id, 2)
    # The next continuation (a new key) follows it.
    assert (await continue_story(stories, user_id, story.id, new_key()))[-1].segment.position == 3


async def test_a_continue_retried_while_it_runs_is_in_progress(
    slow_stories: Stub, stories: Stub, billing
):
    user_id, key = new_user(), new_key()
    story = await create(stories, user_id)
    call = continue_call(slow_stories, user_id, story.id, key)
    assert (await call.read()).WhichOneof("event") == "token"

    error = await refused(continue_story(stories, user_id, story.id, key))

    # Told apart from story-busy: the answer is coming, retry to get it.
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(error) == "idempotency-key-in-progress"
    assert error_details(error).retry_after is not None
    last = None
    while (event := await call.read()) is not grpc.aio.EOF:
        last = event
    retried = await continue_story(stories, user_id, story.id, key)
    assert retried[0].segment == last.segment
    await charged_exactly(billing, user_id, 2)


async def test_a_continue_key_is_free_again_after_its_request_failed(stories: Stub, billing):
    user_id, key = new_user(), new_key()
    story = await create(stories, user_id)
    async with stories_service(f"127.0.0.1:{free_port()}") as without_generation:
        error = await refused(continue_story(without_generation, user_id, story.id, key))
        assert error.code() == grpc.StatusCode.UNAVAILABLE

    events = await continue_story(stories, user_id, story.id, key)

    assert events[-1].segment.position == 2
    assert len(await continue_story(stories, user_id, story.id, key)) == 1
    await charged_exactly(billing, user_id, 2)


async def test_a_retried_end_returns_the_completed_story_and_charges_once(stories: Stub, billing):
    user_id, key = new_user(), new_key()
    story = await create(stories, user_id)
    ended = await end(stories, user_id, story.id, key)
    assert ended.is_complete

    retried = await end(stories, user_id, story.id, key)

    assert retried == ended
    await charged_exactly(billing, user_id, 2)
    # Without the key, ending again is what it always was.
    error = await refused(end(stories, user_id, story.id))
    assert error_reason(error) == "story-complete"
