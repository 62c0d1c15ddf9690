"""What stories promises billing about every generation it asks for: exactly one
of GenerationDelivered (its segment was stored) and GenerationDiscarded (it
never will be) per generation id, whatever fails at whichever step, and no
story left locked once the fault is gone.

Real billing, generation and stories services on the session's private
database and NATS stream; faults are real too: a stories process killed with
SIGKILL, the database refusing a write (a trigger), the database connection
cut (a TCP proxy in front of Postgres). Events are read from the stream."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import asyncpg
import grpc
import pytest
from fabula.stories.v1 import events_pb2, stories_pb2, stories_pb2_grpc
from fabula_billing.app import create_app as create_billing_app
from fabula_billing.settings import Settings as BillingSettings
from fabula_common.db import Database
from fabula_common.errors import error_reason
from fabula_common.messaging.bus import EventBus
from fabula_common.settings import CommonSettings
from fabula_common.testing import ConnectionCutter, free_port, running_app, wait_serving
from fabula_generation.app import create_app as create_generation_app
from fabula_generation.settings import Settings as GenerationSettings
from fabula_stories.app import create_app
from fabula_stories.settings import Settings
from fabula_stories.stories import service
from fabula_stories.stories.events import DeliverySubjects
from fabula_stories.stories.models import Segment, SegmentKind, Story
from fabula_stories.stories.service import GeneratedText
from fabula_stories.stories.tasks import ClaimSweeper
from sqlalchemy import make_url, select

Stub = stories_pb2_grpc.StoriesServiceStub
# Short, so a dead writer's story is free again within the test's patience.
LEASE_SECONDS = 1.5
SWEEP_SECONDS = 0.3
# Pause between words of the slow generator: a continuation streams for
# several seconds (120 words at least), many leases long.
SLOW_TOKEN_MS = 30
# The owner of the claims the tests make themselves: no process of that name runs.
TEST_OWNER = "delivery-tests"


# --- Events on the stream -----------------------------------------------------------


class Published:
    """Every GenerationDelivered / GenerationDiscarded on the session's stream."""

    def __init__(self) -> None:
        self.delivered: list[events_pb2.GenerationDelivered] = []
        self.discarded: list[events_pb2.GenerationDiscarded] = []

    def of_user(self, user_id: str):
        return (
            [e for e in self.delivered if e.user_id == user_id],
            [e for e in self.discarded if e.user_id == user_id],
        )

    def of_generation(self, generation_id: str) -> list:
        return [e for e in [*self.delivered, *self.discarded] if e.generation_id == generation_id]


@pytest.fixture(scope="module")
async def published(test_stream) -> AsyncIterator[Published]:
    settings = CommonSettings()
    subjects = DeliverySubjects.for_settings(settings)
    bus = EventBus(settings, name="stories-delivery-tests")
    js = await bus.jetstream()  # creates the stream if no service did yet
    collected = Published()

    async def collect(msg) -> None:
        if msg.subject == subjects.delivered:
            collected.delivered.append(events_pb2.GenerationDelivered.FromString(msg.data))
        elif msg.subject == subjects.discarded:
            collected.discarded.append(events_pb2.GenerationDiscarded.FromString(msg.data))

    subscription = await js.subscribe(
        f"{settings.nats_subject_prefix}.stories.>", cb=collect, ordered_consumer=True
    )
    yield collected
    await subscription.unsubscribe()
    await bus.close()


# --- Services -------------------------------------------------------------------------


def generation_settings(billing_addr: str, token_delay_ms: int) -> GenerationSettings:
    return GenerationSettings(
        grpc_port=free_port(),
        billing_addr=billing_addr,
        provider="offline",
        offline_token_delay_ms=token_delay_ms,
    )


@pytest.fixture(scope="module")
async def generations(test_database, test_stream) -> AsyncIterator[tuple[str, str]]:
    """Addresses of a quick and of a slow generation service (one billing)."""
    billing = create_billing_app(BillingSettings(grpc_port=free_port()))
    async with running_app(billing) as billing_addr:
        quick = create_generation_app(generation_settings(billing_addr, 2))
        slow = create_generation_app(generation_settings(billing_addr, SLOW_TOKEN_MS))
        async with running_app(quick) as quick_addr, running_app(slow) as slow_addr:
            yield quick_addr, slow_addr


@asynccontextmanager
async def stories_service(generation_addr: str, **settings) -> AsyncIterator[Stub]:
    settings.setdefault("write_lease_seconds", LEASE_SECONDS)
    settings.setdefault("sweep_interval_seconds", SWEEP_SECONDS)
    # Processes running together must be named apart (see Settings.instance_name);
    # these all run in this one, on one host.
    settings.setdefault("instance_name", f"stories-test-{uuid.uuid4().hex[:8]}")
    app = create_app(Settings(grpc_port=free_port(), generation_addr=generation_addr, **settings))
    async with running_app(app) as address, grpc.aio.insecure_channel(address) as channel:
        yield Stub(channel)


@pytest.fixture(scope="module")
async def stories(generations: tuple[str, str]) -> AsyncIterator[Stub]:
    """A stories service with a short lease; its sweeper discards the claims of
    the writers that die in these tests."""
    async with stories_service(generations[0]) as stub:
        yield stub


@pytest.fixture
async def db(test_database) -> AsyncIterator[Database]:
    database = Database(Settings())
    yield database
    await database.dispose()


# --- Helpers --------------------------------------------------------------------------


def new_user() -> str:
    return str(uuid.uuid4())


async def create(stories: Stub, user_id: str) -> stories_pb2.Story:
    return await stories.CreateStory(stories_pb2.CreateStoryRequest(user_id=user_id, genre="noir"))


def continue_call(stories: Stub, user_id: str, story_id: str):
    request = stories_pb2.ContinueStoryRequest(user_id=user_id, story_id=story_id)
    return stories.ContinueStory(request)


async def continue_story(stories: Stub, user_id: str, story_id: str) -> stories_pb2.Segment:
    events = [event async for event in continue_call(stories, user_id, story_id)]
    return events[-1].segment


async def read_to_end(call) -> None:
    while await call.read() is not grpc.aio.EOF:
        pass


async def refused(call: Awaitable) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call
    return error.value


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> float:
    """Seconds until `check` held."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def stored_generation_ids(db: Database, story_id: str) -> list[str]:
    async with db.session_scope() as session:
        query = (
            select(Segment.generation_id)
            .where(Segment.story_id == uuid.UUID(story_id))
            .order_by(Segment.position)
        )
        return list((await session.execute(query)).scalars())


async def locked(db: Database, story_id: str) -> bool:
    """Whether a writer holds the story (its lease is set, expired or not)."""
    async with db.session_scope() as session:
        query = select(Story.writing_until).where(Story.id == uuid.UUID(story_id))
        return (await session.execute(query)).scalar_one() is not None


async def segment_count(stories: Stub, user_id: str, story_id: str) -> int:
    story = await stories.GetStory(
        stories_pb2.GetStoryRequest(
            user_id=user_id, story_id=story_id, view=stories_pb2.STORY_VIEW_BASIC
        )
    )
    return story.segment_count


async def free_for_writing(stories: Stub, user_id: str, story_id: str) -> bool:
    """Whether a new continuation may start (it is written, and discarded by nobody)."""
    try:
        await continue_story(stories, user_id, story_id)
    except grpc.aio.AioRpcError as error:
        if error_reason(error) == "story-busy":
            return False
        raise
    return True


async def one_event_each(published: Published, user_id: str, generations: int) -> None:
    """Wait until `generations` generations of the user are reported; each once."""

    async def reported() -> bool:
        delivered, discarded = published.of_user(user_id)
        return len(delivered) + len(discarded) >= generations

    await eventually(reported)
    await asyncio.sleep(SWEEP_SECONDS * 3)  # time for a second, wrong, event to show
    delivered, discarded = published.of_user(user_id)
    ids = [e.generation_id for e in [*delivered, *discarded]]
    assert len(ids) == len(set(ids)) == generations, (delivered, discarded)


# --- Stored: delivered, once -------------------------------------------------------------


async def test_every_stored_segment_is_reported_delivered_once(
    stories: Stub, published: Published, db: Database
):
    user_id = new_user()
    story = await create(stories, user_id)
    segment = await continue_story(stories, user_id, story.id)
    ended = await stories.EndStory(stories_pb2.EndStoryRequest(user_id=user_id, story_id=story.id))

    await one_event_each(published, user_id, generations=3)
    delivered, discarded = published.of_user(user_id)
    assert discarded == []
    # Each segment is stored with the id its generation (and reservation) was made under.
    assert [e.generation_id for e in delivered] == await stored_generation_ids(db, story.id)
    assert [e.segment_id for e in delivered] == [s.id for s in ended.segments]
    assert delivered[1].segment_id == segment.id
    assert {e.story_id for e in delivered} == {story.id}


# --- Not stored: discarded, once, and the story is free -----------------------------------


async def test_a_failed_model_call_is_discarded_and_frees_the_story(
    stories: Stub, published: Published
):
    user_id = new_user()
    story = await create(stories, user_id)
    async with stories_service(f"127.0.0.1:{free_port()}") as without_generation:
        for call in (
            create(without_generation, user_id),
            continue_story(without_generation, user_id, story.id),
        ):
            assert (await refused(call)).code() == grpc.StatusCode.UNAVAILABLE

    await one_event_each(published, user_id, generations=3)
    delivered, discarded = published.of_user(user_id)
    assert len(delivered) == 1  # the opening
    assert [e.reason for e in discarded] == ["model-failed", "model-failed"]
    assert discarded[1].story_id == story.id
    # Freed at once, not when the lease runs out.
    assert await free_for_writing(stories, user_id, story.id)


async def test_a_story_deleted_mid_write_stores_nothing_and_is_discarded(
    generations: tuple[str, str], stories: Stub, published: Published
):
    user_id = new_user()
    story = await create(stories, user_id)
    async with stories_service(generations[1]) as slow:
        call = continue_call(slow, user_id, story.id)
        assert (await call.read()).WhichOneof("event") == "token"

        await slow.DeleteStory(stories_pb2.DeleteStoryRequest(user_id=user_id, story_id=story.id))

        assert (await refused(read_to_end(call))).code() == grpc.StatusCode.NOT_FOUND
    await one_event_each(published, user_id, generations=2)
    delivered, discarded = published.of_user(user_id)
    assert [e.reason for e in discarded] == ["story-deleted"]
    assert discarded[0].generation_id not in {e.generation_id for e in delivered}


@asynccontextmanager
async def segments_refused(admin_url: str, database: str, story_id: str) -> AsyncIterator[None]:
    """The database refuses every new segment of the story (a trigger)."""
    url = make_url(admin_url).set(database=database).render_as_string(hide_password=False)
    conn = await asyncpg.connect(url)
    trigger = f"refuse_segments_{uuid.UUID(story_id).hex}"
    try:
        await conn.execute(
            "CREATE FUNCTION stories.refuse_segment() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"
        )
        await conn.execute(
            f"CREATE TRIGGER {trigger} BEFORE INSERT ON stories.segments FOR EACH ROW "
            f"WHEN (NEW.story_id = '{story_id}') EXECUTE FUNCTION stories.refuse_segment()"
        )
        yield
    finally:
        await conn.execute(f"DROP TRIGGER IF EXISTS {trigger} ON stories.segments")
        await conn.execute("DROP FUNCTION IF EXISTS stories.refuse_segment()")
        await conn.close()


async def test_a_segment_the_database_refuses_is_discarded_and_frees_the_story(
    stories: Stub, published: Published, admin_url: str, test_database: str
):
    user_id = new_user()
    story = await create(stories, user_id)

    async with segments_refused(admin_url, test_database, story.id):
        await refused(continue_story(stories, user_id, story.id))
        await refused(
            stories.EndStory(stories_pb2.EndStoryRequest(user_id=user_id, story_id=story.id))
        )

    await one_event_each(published, user_id, generations=3)
    _, discarded = published.of_user(user_id)
    assert [e.reason for e in discarded] == ["store-failed", "store-failed"]
    assert await segment_count(stories, user_id, story.id) == 1
    assert await free_for_writing(stories, user_id, story.id)


# --- A writer that dies --------------------------------------------------------------------


def stories_process_env(generation_addr: str, lease_seconds: float, **env: str) -> dict[str, str]:
    """The environment of a `python -m fabula_stories` process on a port of its own."""
    return {
        **os.environ,
        "STORIES_GRPC_PORT": str(free_port()),
        "GENERATION_ADDR": generation_addr,
        "STORIES_WRITE_LEASE_SECONDS": str(lease_seconds),
        "LOG_FORMAT": "text",
        **env,
    }


async def start_stories_process(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fabula_stories",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def kill_mid_stream(
    process: asyncio.subprocess.Process, address: str, user_id: str, story_id: str
) -> None:
    """Start continuing the story through the process, and SIGKILL it as the
    first words arrive."""
    async with grpc.aio.insecure_channel(address) as channel:
        call = continue_call(Stub(channel), user_id, story_id)
        assert (await call.read()).WhichOneof("event") == "token"
        process.send_signal(signal.SIGKILL)
        with contextlib.suppress(grpc.aio.AioRpcError):
            await read_to_end(call)
    await process.wait()


async def test_a_killed_writer_leaves_its_story_free_and_its_generation_discarded(
    generations: tuple[str, str], stories: Stub, published: Published
):
    env = stories_process_env(generations[1], LEASE_SECONDS)
    process = await start_stories_process(env)
    user_id = new_user()
    story = await create(stories, user_id)
    try:
        address = f"127.0.0.1:{env['STORIES_GRPC_PORT']}"
        await wait_serving(address, timeout=30)
        await kill_mid_stream(process, address, user_id, story.id)
        killed_at = time.monotonic()
    finally:
        with contextlib.suppress(ProcessLookupError):  # killed above
            process.kill()
        await process.wait()

    async def discarded() -> bool:
        return any(e.story_id == story.id for e in published.of_user(user_id)[1])

    await eventually(discarded, timeout=LEASE_SECONDS + 5)
    assert time.monotonic() - killed_at < LEASE_SECONDS + 3
    await one_event_each(published, user_id, generations=2)
    _, [event] = published.of_user(user_id)
    assert event.reason == "claim-expired"
    assert await segment_count(stories, user_id, story.id) == 1
    assert await free_for_writing(stories, user_id, story.id)


async def test_a_writer_restarted_after_sigkill_frees_its_story_at_once(
    generations: tuple[str, str], stories: Stub, published: Published, db: Database
):
    # Far longer than the test may take: only the restart can free the story.
    lease = 120.0
    # Its HOSTNAME, as a restarted container keeps it.
    env = stories_process_env(generations[1], lease, HOSTNAME=f"stories-{uuid.uuid4().hex[:8]}")
    env.pop("STORIES_INSTANCE_NAME", None)
    address = f"127.0.0.1:{env['STORIES_GRPC_PORT']}"
    user_id = new_user()
    story = await create(stories, user_id)
    process = await start_stories_process(env)
    try:
        await wait_serving(address, timeout=30)
        await kill_mid_stream(process, address, user_id, story.id)
        killed_at = time.monotonic()
        assert await locked(db, story.id)  # its lease has long to run

        process = await start_stories_process(env)
        await wait_serving(address, timeout=30)
        # Freed before the restarted process took its first call.
        assert not await locked(db, story.id)

        async def discarded() -> bool:
            return bool(published.of_user(user_id)[1])

        published_in = await eventually(discarded, timeout=5)
        async with grpc.aio.insecure_channel(address) as channel:
            assert await free_for_writing(Stub(channel), user_id, story.id)
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()

    assert published_in < 2
    assert time.monotonic() - killed_at < lease / 4
    await one_event_each(published, user_id, generations=3)
    delivered, [event] = published.of_user(user_id)
    assert event.reason == "writer-restarted"
    assert event.story_id == story.id
    # The opening, and the continuation written by the restarted process.
    assert len(delivered) == 2
    assert await segment_count(stories, user_id, story.id) == 2


async def claim_directly(
    db: Database, user_id: str, story_id: str, owner: str, lease_seconds: float
) -> service.WriteClaim:
    """A claim of the story as the stories process `owner` makes it, as if
    that process were writing it now."""
    async with db.session_scope() as session:
        claim = await service.start_writing(
            session,
            uuid.UUID(user_id),
            uuid.UUID(story_id),
            SegmentKind.continuation,
            uuid.uuid4(),
            lease_seconds=lease_seconds,
            owner=owner,
        )
    return claim


async def release(db: Database, claim: service.WriteClaim) -> None:
    async with db.session_scope() as session:
        await service.discard(session, DeliverySubjects.for_settings(Settings()), claim, "test")


async def test_a_restarted_writer_leaves_other_writers_claims_alone(
    generations: tuple[str, str], stories: Stub, published: Published, db: Database
):
    user_id = new_user()
    mine, theirs = await create(stories, user_id), await create(stories, user_id)
    name = f"stories-{uuid.uuid4().hex[:8]}"
    lease = 120.0
    my_claim = await claim_directly(db, user_id, mine.id, name, lease)
    their_claim = await claim_directly(db, user_id, theirs.id, f"{name}-other", lease)
    try:
        async with stories_service(
            generations[0], instance_name=name, write_lease_seconds=lease
        ) as restarted:
            assert not await locked(db, mine.id)
            # Another process may still be writing it: left to its lease.
            assert await locked(db, theirs.id)
            error = await refused(continue_story(restarted, user_id, theirs.id))
            assert error_reason(error) == "story-busy"
            assert await free_for_writing(restarted, user_id, mine.id)
        await one_event_each(published, user_id, generations=4)
        assert [e.reason for e in published.of_generation(str(my_claim.generation_id))] == [
            "writer-restarted"
        ]
        assert published.of_generation(str(their_claim.generation_id)) == []
    finally:
        await release(db, their_claim)


async def test_a_restarted_writer_discards_only_claims_made_before_it_started(
    stories: Stub, published: Published, db: Database
):
    """What lets recovery be retried after startup (the database was away):
    the new process's own claims are never taken for its predecessor's."""
    user_id = new_user()
    before, after = await create(stories, user_id), await create(stories, user_id)
    name = f"stories-{uuid.uuid4().hex[:8]}"
    old_claim = await claim_directly(db, user_id, before.id, name, 120.0)
    sweeper = ClaimSweeper(
        db, DeliverySubjects.for_settings(Settings()), SWEEP_SECONDS, owner=name
    )  # the process starts
    new_claim = await claim_directly(db, user_id, after.id, name, 120.0)
    try:
        assert await sweeper.recover_once() == 1
        assert not await locked(db, before.id)
        assert await locked(db, after.id)
        assert await sweeper.recover_once() == 0
    finally:
        await release(db, new_claim)
    await one_event_each(published, user_id, generations=4)
    assert [e.reason for e in published.of_generation(str(old_claim.generation_id))] == [
        "writer-restarted"
    ]


async def test_a_long_call_keeps_its_story_beyond_the_lease(
    generations: tuple[str, str], stories: Stub, published: Published
):
    user_id = new_user()
    story = await create(stories, user_id)
    async with stories_service(generations[1], write_lease_seconds=1.0) as slow:
        call = continue_call(slow, user_id, story.id)
        assert (await call.read()).WhichOneof("event") == "token"
        started = time.monotonic()
        await asyncio.sleep(2.5)  # two and a half leases

        error = await refused(continue_story(slow, user_id, story.id))
        assert error_reason(error) == "story-busy"

        events = []
        while (event := await call.read()) is not grpc.aio.EOF:
            events.append(event)
        assert time.monotonic() - started > 2.5  # still writing when refused
        assert events[-1].segment.position == 2
    await one_event_each(published, user_id, generations=2)
    delivered, discarded = published.of_user(user_id)
    assert discarded == []
    assert delivered[-1].segment_id == events[-1].segment.id


# --- Storing against discarding: exactly one wins --------------------------------------------


GENERATED = GeneratedText(
    text="Rain again.", provider="offline", model="test", is_language_model=False
)


async def test_a_text_arriving_after_its_claim_was_swept_is_not_stored(
    stories: Stub, published: Published, db: Database
):
    user_id = new_user()
    story = await create(stories, user_id)
    user_uuid, story_id = uuid.UUID(user_id), uuid.UUID(story.id)
    settings = Settings()
    subjects = DeliverySubjects.for_settings(settings)
    async with db.session_scope() as session:
        claim = await service.start_writing(
            session,
            user_uuid,
            story_id,
            SegmentKind.continuation,
            uuid.uuid4(),
            lease_seconds=0.01,
            owner=TEST_OWNER,
        )
    await asyncio.sleep(0.05)
    # This sweep or the running service's, whichever takes the claim first.
    await ClaimSweeper(db, subjects, SWEEP_SECONDS, owner=TEST_OWNER).sweep_once()

    with pytest.raises(service.ClaimLost):
        async with db.session_scope() as session:
            await service.store_segment(session, subjects, claim, GENERATED)

    await one_event_each(published, user_id, generations=2)
    assert [e.reason for e in published.of_generation(str(claim.generation_id))] == [
        "claim-expired"
    ]
    assert await segment_count(stories, user_id, story.id) == 1


async def test_of_storing_and_sweeping_the_same_claim_exactly_one_wins(
    stories: Stub, published: Published, db: Database
):
    user_id = new_user()
    user_uuid = uuid.UUID(user_id)
    subjects = DeliverySubjects.for_settings(Settings())
    stories_ids = [uuid.UUID((await create(stories, user_id)).id) for _ in range(3)]
    claims = []
    for story_id in stories_ids:
        async with db.session_scope() as session:
            claim = await service.start_writing(
                session,
                user_uuid,
                story_id,
                SegmentKind.continuation,
                uuid.uuid4(),
                lease_seconds=0.01,
                owner=TEST_OWNER,
            )
        claims.append(claim)
    await asyncio.sleep(0.05)

    async def store(claim) -> bool:
        try:
            async with db.session_scope() as session:
                await service.store_segment(session, subjects, claim, GENERATED)
        except service.ClaimLost:
            return False
        return True

    sweeper = ClaimSweeper(db, subjects, SWEEP_SECONDS, owner=TEST_OWNER)
    *stored, _ = await asyncio.gather(*(store(c) for c in claims), sweeper.sweep_once())

    await one_event_each(published, user_id, generations=3 + len(claims))
    for claim, was_stored in zip(claims, stored, strict=True):
        [event] = published.of_generation(str(claim.generation_id))
        assert isinstance(event, events_pb2.GenerationDelivered) is was_stored
        count = await segment_count(stories, user_id, str(claim.story_id))
        assert count == (2 if was_stored else 1)
        assert not await locked(db, str(claim.story_id))


# --- The database away while freeing -------------------------------------------------------


async def test_a_database_blip_while_freeing_leaves_no_story_locked(
    generations: tuple[str, str], stories: Stub, published: Published
):
    url = make_url(Settings().database_url)
    cutter = ConnectionCutter(url.host or "127.0.0.1", url.port or 5432)
    proxied = url.set(host="127.0.0.1", port=await cutter.start())
    user_id = new_user()
    story = await create(stories, user_id)
    # A lease far longer than the blip: freeing the story is up to the writer,
    # not to a sweeper.
    lease = 20.0
    try:
        async with stories_service(
            generations[1],
            database_url=proxied.render_as_string(hide_password=False),
            write_lease_seconds=lease,
        ) as writer:
            call = continue_call(writer, user_id, story.id)
            assert (await call.read()).WhichOneof("event") == "token"
            cut_at = time.monotonic()
            cutter.cut()
            # The text arrives, but cannot be stored, nor the story freed.
            error = await refused(read_to_end(call))
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            assert not await free_for_writing(stories, user_id, story.id)
            await asyncio.sleep(1.0)

            cutter.restore()
            freed_in = await eventually(lambda: free_for_writing(stories, user_id, story.id))
    finally:
        await cutter.close()

    assert freed_in < 5 and time.monotonic() - cut_at < lease
    await one_event_each(published, user_id, generations=3)
    delivered, discarded = published.of_user(user_id)
    assert [e.reason for e in discarded] == ["store-failed"]
    assert discarded[0].story_id == story.id
    # The opening and the continuation written once the story was free.
    assert len(delivered) == 2
    assert await segment_count(stories, user_id, story.id) == 2
