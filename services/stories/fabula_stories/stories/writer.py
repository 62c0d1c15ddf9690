"""Writing story segments with the model: call the generation service (which
meters the call: it reserves quota with billing and refuses a call over the
plan before the model runs), store the result.

Each database step is its own short transaction: a model call takes seconds
and must hold neither a connection nor a row lock. Instead, before the call,
the writer records a claim of the generation it asks for (its id is chosen
here and given to generation, which reserves quota under it) and, to continue
or end a story, claims the story (a write lease on the story row): one
segment is written at a time and each is written knowing the ones before it;
a concurrent request is refused before any model call, so it costs nothing.
The claim is short and renewed while the call runs, so the story of a writer
that died is free again within one lease.

The generation counts against the user's plan only once its text is stored:
storing takes the claim and reports GenerationDelivered in one transaction;
a failed call, a story deleted or completed meanwhile, or a failed store
takes the claim and reports GenerationDiscarded instead, freeing the story.
Should that transaction fail too (the database is away), it is retried in
the background, and the sweeper (tasks.ClaimSweeper) discards any claim its
writer stopped renewing. Storing and discarding both take the same claim, so
exactly one of the two events goes out per generation.

The model call and the storing of its result run in a task of their own, so
a caller that goes away midway (the gateway's client disconnected) cancels
neither: the user finds the text in the story afterwards.

A request with an Idempotency-Key is recorded in the transaction that claims
its generation and finished in the one that stores its segment (see
fabula_stories.idempotency): a retry is answered from what the first stored,
before any claim or model call, so it costs nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from fabula.generation.v1 import generation_pb2, generation_pb2_grpc
from fabula_common.db import Database
from fabula_common.errors import (
    FabulaError,
    NotFound,
    StoryComplete,
    Unavailable,
    UpstreamError,
    from_rpc_error,
)
from sqlalchemy.ext.asyncio import async_sessionmaker

from fabula_stories.context import builder
from fabula_stories.idempotency import service as idempotency
from fabula_stories.idempotency.service import FirstAnswer, KeyedRequest
from fabula_stories.leases import WriterTasks, keep_renewed
from fabula_stories.leaving import service as leaving
from fabula_stories.settings import Settings
from fabula_stories.stories import events, service
from fabula_stories.stories.events import DeliverySubjects
from fabula_stories.stories.models import Segment, SegmentKind, Story
from fabula_stories.stories.service import GeneratedText, NewStory, WriteClaim

log = logging.getLogger(__name__)

T = TypeVar("T")

_PURPOSE = {
    SegmentKind.opening: generation_pb2.PURPOSE_STORY_OPENING,
    SegmentKind.continuation: generation_pb2.PURPOSE_STORY_CONTINUATION,
    SegmentKind.ending: generation_pb2.PURPOSE_STORY_ENDING,
}
# Discarding a generation while the database is away is retried after these
# delays, doubling.
_DISCARD_RETRY_FIRST_SECONDS = 0.25
_DISCARD_RETRY_MAX_SECONDS = 2.0
# How long shutdown waits for the writes it cancelled to be discarded.
_DISCARD_ON_SHUTDOWN_SECONDS = 2.0

# What the generation service logs usage against.
_SUBJECT_KIND = "story"

# What a streaming call receives from its writing task, in order: text
# deltas, then what was stored (for ContinueStory the segment, for
# CreateStoryStream the story) or the error that ended the work.
ContinueEvent = str | Segment
CreateEvent = str | Story


@dataclass(frozen=True)
class _Target:
    """Where a segment goes: after the head, after `after_segment_id` (a
    branch), or as another version of `regenerates_segment_id` (whose kind it
    then takes)."""

    kind: SegmentKind
    after_segment_id: uuid.UUID | None = None
    regenerates_segment_id: uuid.UUID | None = None


@dataclass
class _Delivery:
    queue: asyncio.Queue[str | Segment | Story | Exception] = field(default_factory=asyncio.Queue)
    # False once the streaming call has ended (normally or because its
    # client went away); the task then finishes unobserved.
    listening: bool = True


class StoryWriter:
    def __init__(
        self,
        db: Database,
        generation: generation_pb2_grpc.GenerationServiceStub,
        settings: Settings,
    ) -> None:
        self._db = db
        self._generation = generation
        self._settings = settings
        self._subjects = DeliverySubjects.for_settings(settings)
        self._context_limits = builder.ContextLimits.from_settings(settings)
        self._autocommit = async_sessionmaker(
            db.engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
        )
        self._tasks = WriterTasks()
        self._stopped = asyncio.Event()

    async def create(self, new: NewStory, keyed: KeyedRequest | None = None) -> Story:
        """A new story with its generated opening (and title, when none is
        given); for a retry of `keyed`, the story its first request created,
        as it is now."""
        story_id = uuid.uuid4()
        return await self._detached(
            self._create(new, keyed, story_id, self._generate), f"create story {story_id}"
        )

    async def create_stream(
        self, new: NewStory, keyed: KeyedRequest | None = None
    ) -> AsyncIterator[CreateEvent]:
        """As create, streamed: text deltas as the model writes the opening,
        then the stored story; for a retry of `keyed`, just the story."""
        story_id = uuid.uuid4()
        delivery = _Delivery()

        def generate(request: generation_pb2.GenerateRequest) -> Awaitable[GeneratedText]:
            return self._generate_stream(request, delivery.queue.put_nowait)

        work = self._create(new, keyed, story_id, generate)
        self._spawn(self._deliver(work, delivery, f"create story {story_id}"))
        async for event in self._receive(delivery):
            yield event

    async def _create(
        self,
        new: NewStory,
        keyed: KeyedRequest | None,
        story_id: uuid.UUID,
        generate: Callable[[generation_pb2.GenerateRequest], Awaitable[GeneratedText]],
    ) -> Story:
        """The work of one CreateStory or CreateStoryStream call, run in a
        task of its own (see _detached, _deliver): claim the opening, have
        `generate` write it, store it."""
        generation_id = uuid.uuid4()
        request = generation_pb2.GenerateRequest(
            user_id=str(new.user_id),
            purpose=_PURPOSE[SegmentKind.opening],
            subject=_subject(story_id),
            story=generation_pb2.StoryInputs(
                genre=new.genre,
                title=new.title or "",
                characters=new.characters,
                opening_line=new.opening_line or "",
            ),
            want_title=new.title is None,
            generation_id=str(generation_id),
            delivery=generation_pb2.DELIVERY_CONFIRMED_BY_OWNER,
        )
        async with self._db.session_scope() as session:
            # Held until the claim commits: a deletion of the user waits for it.
            await leaving.refuse_deleted_user(session, new.user_id)
            if keyed is not None:
                first = await idempotency.begin(
                    session, keyed, generation_id=generation_id, story_id=story_id
                )
                if first is not None:
                    return await service.get_story(session, new.user_id, first.story_id)
            claim = await service.claim_opening(
                session,
                new.user_id,
                story_id,
                generation_id,
                lease_seconds=self._settings.write_lease_seconds,
                owner=self._settings.instance_name,
            )

        async def store() -> Story:
            opening = await generate(request)
            async with self._db.session_scope() as session:
                story = await service.store_opening(session, self._subjects, claim, new, opening)
                await idempotency.finish(session, keyed, generation_id, story.segments[0].id)
                return story

        return await self._claimed(claim, store())

    async def continue_story(
        self,
        user_id: uuid.UUID,
        story_id: uuid.UUID,
        direction: str,
        keyed: KeyedRequest | None = None,
        *,
        after_segment_id: uuid.UUID | None = None,
    ) -> AsyncIterator[ContinueEvent]:
        """Text deltas as the model writes the next segment (after the head,
        or after `after_segment_id`: a branch), then the stored segment; for a
        retry of `keyed`, just the segment its first request stored."""
        target = _Target(SegmentKind.continuation, after_segment_id=after_segment_id)
        async for event in self._stream(user_id, story_id, target, direction, keyed):
            yield event

    async def regenerate(
        self,
        user_id: uuid.UUID,
        story_id: uuid.UUID,
        segment_id: uuid.UUID,
        direction: str,
        keyed: KeyedRequest | None = None,
    ) -> AsyncIterator[ContinueEvent]:
        """As continue_story, writing another version of `segment_id` (same
        parent, same kind), which the story then follows. A failed
        regeneration stores nothing: the story stays as it was."""
        target = _Target(SegmentKind.continuation, regenerates_segment_id=segment_id)
        async for event in self._stream(user_id, story_id, target, direction, keyed):
            yield event

    async def _stream(
        self,
        user_id: uuid.UUID,
        story_id: uuid.UUID,
        target: _Target,
        direction: str,
        keyed: KeyedRequest | None,
    ) -> AsyncIterator[ContinueEvent]:
        prepared = await self._prepare(user_id, story_id, target, keyed)
        if isinstance(prepared, FirstAnswer):
            async with self._db.session_scope() as session:
                segment = await idempotency.stored_segment(session, user_id, prepared)
            yield segment
            return
        delivery = _Delivery()
        work = self._continue(prepared, direction, keyed, delivery)
        self._spawn(self._deliver(work, delivery, f"continue story {story_id}"))
        async for event in self._receive(delivery):
            yield event

    async def _deliver(
        self, work: Awaitable[Segment | Story], delivery: _Delivery, what: str
    ) -> None:
        """Await `work` (in a task of its own, which outlives the streaming
        call) and hand what it stored, or the error that ended it, to the
        call; never raises but on cancellation."""
        try:
            stored = await work
        except asyncio.CancelledError:
            delivery.queue.put_nowait(Unavailable("the service is shutting down"))
            raise
        except Exception as exc:  # noqa: BLE001 - handed to the call, which maps it
            if not delivery.listening:
                log.warning("%s: failed after its caller left: %r", what, exc)
            delivery.queue.put_nowait(exc)
            return
        if not delivery.listening:
            log.info("%s: stored after its caller left", what)
        delivery.queue.put_nowait(stored)

    @staticmethod
    async def _receive(delivery: _Delivery) -> AsyncIterator[Any]:
        """The text deltas `delivery` receives, then what was stored (the
        last event); the error that ended the work is raised instead."""
        try:
            while True:
                event = await delivery.queue.get()
                if isinstance(event, Exception):
                    raise event
                yield event
                if not isinstance(event, str):
                    return
        finally:
            delivery.listening = False

    async def end(
        self,
        user_id: uuid.UUID,
        story_id: uuid.UUID,
        direction: str,
        keyed: KeyedRequest | None = None,
    ) -> Story:
        """Write the ending and complete the story; returns it with all its
        segments (for a retry of `keyed`: as it is now, nothing written)."""
        prepared = await self._prepare(user_id, story_id, _Target(SegmentKind.ending), keyed)
        if isinstance(prepared, FirstAnswer):
            async with self._db.session_scope() as session:
                return await service.get_story(session, user_id, prepared.story_id)
        claim = prepared

        async def write() -> Story:
            ending = await self._generate(await self._request(claim, direction))
            async with self._db.session_scope() as session:
                _, segment = await service.store_segment(session, self._subjects, claim, ending)
                await idempotency.finish(session, keyed, claim.generation_id, segment.id)
                return await service.get_story(session, user_id, story_id)

        return await self._detached(self._claimed(claim, write()), f"end story {story_id}")

    # --- Lifecycle: a worker of the app, stopped before the outbox relay ----------

    async def run(self) -> None:
        await self._stopped.wait()

    async def stop(self) -> None:
        """Give writes in flight the shutdown grace to finish, then cancel them
        (their claims are discarded, or left to a sweeper)."""
        try:
            await self._finish_writes()
        finally:
            self._stopped.set()

    async def _finish_writes(self) -> None:
        if not len(self._tasks):
            return
        log.info("waiting for %d story writes to finish", len(self._tasks))
        await self._tasks.finish(self._settings.shutdown_grace_seconds)
        # The cancelled writes discard their generations in tasks of their
        # own: give those a moment, so the relay's last pass publishes them.
        await self._tasks.wait(_DISCARD_ON_SHUTDOWN_SECONDS)

    # --- Steps ------------------------------------------------------------------

    async def _prepare(
        self,
        user_id: uuid.UUID,
        story_id: uuid.UUID,
        target: _Target,
        keyed: KeyedRequest | None,
    ) -> WriteClaim | FirstAnswer:
        """Claim the story for writing before any model call: a story that is
        missing, complete or being written already costs the user nothing.
        A retry of `keyed` claims nothing: the first request's answer instead."""
        generation_id = uuid.uuid4()
        # Without a key the claim is one statement, sent without BEGIN/COMMIT
        # (one round trip before the writing can start).
        scope = self._db.session_scope() if keyed is not None else self._autocommit()
        async with scope as session:
            # Before the story is claimed: a retry while the first request
            # runs is told so (not "story busy"), and a retry after it claims
            # nothing.
            if keyed is not None:
                first = await idempotency.begin(
                    session, keyed, generation_id=generation_id, story_id=story_id
                )
                if first is not None:
                    return first
            return await service.start_writing(
                session,
                user_id,
                story_id,
                target.kind,
                generation_id,
                lease_seconds=self._settings.write_lease_seconds,
                owner=self._settings.instance_name,
                after_segment_id=target.after_segment_id,
                regenerates_segment_id=target.regenerates_segment_id,
            )

    async def _request(self, claim: WriteClaim, direction: str) -> generation_pb2.GenerateRequest:
        """The model call for the claim's segment, with its context (read
        while the claim is held: the path it reads cannot change meanwhile).
        One statement, sent without BEGIN/COMMIT."""
        async with self._autocommit() as session:
            built = await service.load_context(
                session,
                claim,
                direction,
                max_segments=self._settings.context_segments,
                max_chars=self._settings.context_max_chars,
                limits=self._context_limits,
            )
        # The same request GetContext shows (builder.generate_request).
        return builder.generate_request(
            built,
            user_id=claim.user_id,
            story_id=claim.story_id,
            purpose=_PURPOSE[claim.kind],
            generation_id=claim.generation_id,
        )

    async def _continue(
        self,
        claim: WriteClaim,
        direction: str,
        keyed: KeyedRequest | None,
        delivery: _Delivery,
    ) -> Segment:
        """The work of one ContinueStory or RegenerateSegment call, run in a
        task of its own (see _deliver): its text deltas go to `delivery`."""

        async def write() -> Segment:
            request = await self._request(claim, direction)
            continuation = await self._generate_stream(request, delivery.queue.put_nowait)
            async with self._db.session_scope() as session:
                _, segment = await service.store_segment(
                    session, self._subjects, claim, continuation
                )
                await idempotency.finish(session, keyed, claim.generation_id, segment.id)
            return segment

        return await self._claimed(claim, write())

    async def write_claimed(self, claim: WriteClaim, work: Awaitable[T], what: str) -> T:
        """Await `work` (a model call and the storing of its result, which
        takes `claim`) in a task of its own that outlives a caller who goes
        away, renewing the claim meanwhile and discarding its generation if
        the work fails: what every owner-confirmed generation of stories
        needs (picture stories use it too)."""
        return await self._detached(self._claimed(claim, work), what)

    async def _claimed(self, claim: WriteClaim, work: Awaitable[T]) -> T:
        """Await the generation and storing of `claim`'s text, renewing the
        claim meanwhile. Storing takes the claim; should any step fail
        instead, the generation is discarded and the story freed at once, so
        the next writer need not wait for the lease to run out."""
        renewing = asyncio.Event()
        self._spawn(self._renew(claim, renewing))
        try:
            return await work
        except BaseException as exc:
            renewing.set()
            if not isinstance(exc, service.ClaimLost):  # nothing left to discard
                await self._discard(claim, _discard_reason(exc))
            raise
        finally:
            renewing.set()

    async def _renew(self, claim: WriteClaim, stopped: asyncio.Event) -> None:
        """Renew `claim` every third of the lease until `stopped` is set (see
        leases.keep_renewed: it survives a short database outage)."""
        held = await keep_renewed(
            self._db,
            lambda session: service.renew_claim(session, claim, self._settings.write_lease_seconds),
            stopped,
            interval=self._settings.write_lease_renew_seconds,
            what=f"generation {claim.generation_id}",
        )
        # Not held while still running: stored or discarded by its writer
        # meanwhile (stopped then), else lost.
        if not held and not stopped.is_set():
            log.warning(
                "the claim of generation %s was discarded while it ran; "
                "its text will not be stored",
                claim.generation_id,
            )

    async def _discard(self, claim: WriteClaim, reason: str) -> None:
        """Discard `claim`'s generation and free its story. The caller waits for
        the first attempt only: while the database is away, attempts go on in
        the background with backoff for as long as the claim could still be
        held (after that the sweeper has discarded it)."""
        attempted = asyncio.Event()
        give_up_at = time.monotonic() + self._settings.write_lease_seconds

        async def discard() -> None:
            delay = _DISCARD_RETRY_FIRST_SECONDS
            while True:
                try:
                    async with self._db.session_scope() as session:
                        await service.discard(session, self._subjects, claim, reason)
                    if delay > _DISCARD_RETRY_FIRST_SECONDS:
                        log.info("discarded generation %s after retrying", claim.generation_id)
                    return
                except Exception as exc:  # noqa: BLE001 - retried, then left to the sweeper
                    if time.monotonic() > give_up_at:
                        log.warning(
                            "could not discard generation %s; its claim will be swept: %r",
                            claim.generation_id,
                            exc,
                        )
                        return
                    log.warning(
                        "could not discard generation %s, retrying in %.2fs: %r",
                        claim.generation_id,
                        delay,
                        exc,
                    )
                finally:
                    attempted.set()
                await asyncio.sleep(delay)
                delay = min(delay * 2, _DISCARD_RETRY_MAX_SECONDS)

        # A task of its own: discarding must survive the cancellation of a
        # caller that went away.
        self._spawn(discard())
        await asyncio.shield(attempted.wait())

    async def _generate(self, request: generation_pb2.GenerateRequest) -> GeneratedText:
        try:
            return _generated_text(await self._generation.Generate(request))
        except grpc.aio.AioRpcError as err:
            # A quota refusal stays one, an unreachable peer stays unavailable.
            raise from_rpc_error(err) from err

    async def _generate_stream(
        self, request: generation_pb2.GenerateRequest, on_token: Callable[[str], None]
    ) -> GeneratedText:
        try:
            result: generation_pb2.GenerateResponse | None = None
            async for event in self._generation.GenerateStream(request):
                which = event.WhichOneof("event")
                if which == "token" and event.token.text:
                    on_token(event.token.text)
                elif which == "done":
                    result = event.done
        except grpc.aio.AioRpcError as err:
            # A quota refusal comes before the first token, so it reaches the
            # streaming call (ContinueStory, CreateStoryStream) before any
            # event of its own.
            raise from_rpc_error(err) from err
        if result is None:
            raise UpstreamError("the generation stream ended without a result")
        return _generated_text(result)

    # --- Tasks ------------------------------------------------------------------

    def _spawn(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        return self._tasks.spawn(work)

    async def _detached(self, work: Coroutine[Any, Any, T], what: str) -> T:
        """Await `work` run in its own task, which outlives this call if the
        caller goes away."""
        task = self._spawn(work)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(lambda t: _log_unobserved(t, what))
            raise


def _discard_reason(exc: BaseException) -> str:
    if isinstance(exc, NotFound):
        return events.STORY_DELETED
    if isinstance(exc, StoryComplete):
        return events.STORY_COMPLETE
    if isinstance(exc, asyncio.CancelledError):
        return events.WRITER_STOPPED
    if isinstance(exc, FabulaError):  # what generation answered (see from_rpc_error)
        return events.MODEL_FAILED
    return events.STORE_FAILED


def _log_unobserved(task: asyncio.Task[Any], what: str) -> None:
    if task.cancelled():
        log.warning("%s: cancelled after its caller left", what)
    elif (exc := task.exception()) is not None:
        log.warning("%s: failed after its caller left: %r", what, exc)
    else:
        log.info("%s: finished after its caller left", what)


def _subject(story_id: uuid.UUID) -> generation_pb2.SubjectRef:
    return generation_pb2.SubjectRef(kind=_SUBJECT_KIND, id=str(story_id))


def _generated_text(response: generation_pb2.GenerateResponse) -> GeneratedText:
    if not response.text.strip():
        raise UpstreamError("the model returned no text")
    return GeneratedText(
        text=response.text,
        provider=response.provider,
        model=response.model,
        is_language_model=response.is_language_model,
        title=response.title,
    )
