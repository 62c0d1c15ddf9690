"""gRPC edge of fabula.generation.v1.GenerationService: proto <-> domain, and
the transactions that record each model call."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing

import grpc
from fabula.generation.v1 import generation_pb2, generation_pb2_grpc
from fabula_common.context import is_child_safe
from fabula_common.db import Database
from fabula_common.errors import AlreadyExists, FabulaError, InvalidArgument, Unavailable
from fabula_common.money import format_usd, to_money
from fabula_common.tasks import abandon
from sqlalchemy.ext.asyncio import async_sessionmaker

from fabula_generation.generations import repository
from fabula_generation.generations.domain import (
    STARTED,
    STORY_PURPOSES,
    Delivery,
    GenerationRequest,
    Outcome,
    Purpose,
    StoryInputs,
    Subject,
)
from fabula_generation.generations.metering import Meter
from fabula_generation.generations.pricing import PriceTable
from fabula_generation.generations.prompts import approximate_tokens, build_prompt
from fabula_generation.jobs import repository as jobs_repository
from fabula_generation.generations.service import (
    GenerationCall,
    RecordedGeneration,
    complete_generation,
    observe,
    record_generation,
    start_generation,
    stream_generation,
    validate_request,
)
from fabula_generation.providers import GenerationProvider
from fabula_generation.safety.moderation import (
    Moderator,
    moderator_for,
    require_suitable,
    written_by_the_user,
)

log = logging.getLogger(__name__)

_PURPOSES = {
    generation_pb2.PURPOSE_STORY_OPENING: Purpose.story_opening,
    generation_pb2.PURPOSE_STORY_CONTINUATION: Purpose.story_continuation,
    generation_pb2.PURPOSE_STORY_ENDING: Purpose.story_ending,
}

# What a caller of the previous release sends instead of a purpose: the kind of
# story segment, with the story's id and a reservation it made with billing.
_LEGACY_KINDS = {
    generation_pb2.GENERATION_KIND_OPENING: Purpose.story_opening,
    generation_pb2.GENERATION_KIND_CONTINUATION: Purpose.story_continuation,
    generation_pb2.GENERATION_KIND_ENDING: Purpose.story_ending,
}


def is_legacy_request(message: generation_pb2.GenerateRequest) -> bool:
    """A request of the previous release's shape: a kind and no purpose."""
    return (
        message.purpose == generation_pb2.PURPOSE_UNSPECIFIED
        and message.kind != generation_pb2.GENERATION_KIND_UNSPECIFIED
    )


def prior_reservation(message: generation_pb2.GenerateRequest) -> str | None:
    """The reservation a caller of the previous release made with billing
    before calling; None when this service is to reserve. InvalidArgument
    unless it is a UUID."""
    if not is_legacy_request(message) or not message.reservation_id:
        return None
    try:
        return str(uuid.UUID(message.reservation_id))
    except ValueError:
        raise InvalidArgument("reservation_id must be a UUID") from None


_DELIVERIES = {
    generation_pb2.DELIVERY_UNSPECIFIED: Delivery.on_completion,
    generation_pb2.DELIVERY_ON_COMPLETION: Delivery.on_completion,
    generation_pb2.DELIVERY_CONFIRMED_BY_OWNER: Delivery.confirmed_by_owner,
}


def requested_generation_id(message: generation_pb2.GenerateRequest) -> uuid.UUID | None:
    """The id the caller chose for the generation; None when it left it to us."""
    if not message.generation_id:
        return None
    try:
        return uuid.UUID(message.generation_id)
    except ValueError:
        raise InvalidArgument("generation_id must be a UUID") from None


def delivery_from_proto(message: generation_pb2.GenerateRequest) -> Delivery:
    try:
        return _DELIVERIES[message.delivery]
    except KeyError:
        raise InvalidArgument(
            "delivery must be DELIVERY_ON_COMPLETION or DELIVERY_CONFIRMED_BY_OWNER"
        ) from None


def request_from_proto(message: generation_pb2.GenerateRequest) -> GenerationRequest:
    purpose = _PURPOSES.get(message.purpose)
    subject = Subject(kind=message.subject.kind, id=message.subject.id)
    if is_legacy_request(message):
        purpose = _LEGACY_KINDS.get(message.kind)
        subject = Subject(kind="story", id=message.story_id)
    if purpose is None:
        raise InvalidArgument(
            "purpose must be one of " + ", ".join(p.value for p in _PURPOSES.values())
        )
    inputs = message.WhichOneof("inputs")
    if purpose in STORY_PURPOSES and inputs != "story":
        raise InvalidArgument(f"purpose {purpose.value} needs story inputs")
    story = message.story
    request = GenerationRequest(
        user_id=message.user_id,
        purpose=purpose,
        subject=subject,
        story=StoryInputs(
            genre=story.genre,
            title=story.title,
            characters=tuple(story.characters),
            opening_line=story.opening_line,
            previous_segments=tuple(story.previous_segments),
            memory=story.memory,
            authors_note=story.authors_note,
            lore=tuple(story.lore),
        ),
        direction=message.direction,
        want_title=message.want_title,
    )
    validate_request(request)
    return request


class GenerationRecorder:
    """Records model calls: as started (by this process instance) while their
    quota is reserved, then with their outcome, each in a task of its own.

    The caller awaits the record through asyncio.shield, so a call abandoned
    midway (its handler cancelled) still gets its record written. An outcome
    the database could not take (a blip, a restart) fails the caller at once
    (its reservation given back at once, as a fast path) and is written again
    in the background, backing off from RETRY_INITIAL_SECONDS to
    RETRY_MAX_SECONDS for as long as the call could still be running
    (afterwards the sweeper settles it), so its usage event goes out within
    seconds of the database's return. As a background worker
    of the app, stop() waits for records still being written (a retry makes
    one last attempt) before the outbox relay's last pass publishes their
    events.
    """

    RETRY_INITIAL_SECONDS = 0.25
    RETRY_MAX_SECONDS = 2.0

    def __init__(
        self,
        db: Database,
        prices: PriceTable,
        subject: str,
        meter: Meter,
        *,
        owner: str | None = None,
        abandon_after_seconds: float = 150.0,
    ) -> None:
        self.db = db
        self.prices = prices
        self.subject = subject
        self.meter = meter
        self.owner = owner or socket.gethostname()
        self.abandon_after_seconds = abandon_after_seconds
        self._autocommit = async_sessionmaker(
            db.engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
        )
        self._pending: set[asyncio.Task] = set()
        self._stopped = asyncio.Event()

    async def start(self, call: GenerationCall) -> None:
        """Write the call as started (AlreadyExists for an id used before).
        One statement, sent without BEGIN/COMMIT: one round trip."""
        async with self._autocommit() as session:
            await start_generation(session, call, self.prices, self.owner)

    def recording(self, call: GenerationCall) -> Recording:
        return Recording(self, call)

    async def record(
        self, call: GenerationCall, outcome: Outcome, error: str | None
    ) -> RecordedGeneration | None:
        task = self.track(self._write(call, outcome, error), f"record-generation-{call.id}")
        return await asyncio.shield(task)

    def track(self, coroutine, name: str) -> asyncio.Task:
        """Run `coroutine` in a task that stop() waits for."""
        task = asyncio.create_task(coroutine, name=name)
        self._pending.add(task)
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Task) -> None:
        self._pending.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a failure was logged in _write already

    async def _write(
        self, call: GenerationCall, outcome: Outcome, error: str | None
    ) -> RecordedGeneration | None:
        try:
            recorded = await self._write_once(call, outcome, error)
        except Exception:
            # Logged here: when the caller has gone, nobody else sees it.
            log.exception("could not record generation %s (%s)", call.id, outcome.value)
            if outcome is Outcome.completed:
                # The caller gets an error, not the text: it must not count.
                outcome = Outcome.failed
                error = "its outcome could not be recorded in time; the caller got an error"
            self.track(self._retry(call, outcome, error), f"retry-record-{call.id}")
            # The caller gets no result, so it will not count: its quota goes
            # back now rather than when the retried record's event arrives.
            if call.reserved:
                await self.meter.release(call.request.user_id, call.reservation_id)
            raise
        return self._observed(call, outcome, recorded)

    async def _write_once(
        self, call: GenerationCall, outcome: Outcome, error: str | None
    ) -> RecordedGeneration | None:
        async with self.db.session_scope() as session:
            return await record_generation(
                session, call, outcome, error=error, prices=self.prices, subject=self.subject
            )

    async def _retry(self, call: GenerationCall, outcome: Outcome, error: str | None) -> None:
        """Write the outcome again until the database takes it, for as long as
        the sweeper would leave the row alone; once stopping, one last try."""
        give_up_at = time.monotonic() + max(self.abandon_after_seconds - call.duration_ms / 1000, 0)
        delay = self.RETRY_INITIAL_SECONDS
        while True:
            last_try = self._stopped.is_set() or time.monotonic() + delay > give_up_at
            if not last_try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), timeout=delay)
            try:
                recorded = await self._write_once(call, outcome, error)
            except Exception as exc:  # noqa: BLE001 - still down: wait longer
                if last_try or self._stopped.is_set():
                    log.error(
                        "gave up recording generation %s (%s): %s; it is settled as abandoned "
                        "when this instance starts again, or by the sweeper",
                        call.id,
                        outcome.value,
                        exc or type(exc).__name__,
                    )
                    return
                delay = min(delay * 2, self.RETRY_MAX_SECONDS)
                continue
            log.info("generation %s recorded (%s) after a retry", call.id, outcome.value)
            self._observed(call, outcome, recorded)
            return

    @staticmethod
    def _observed(
        call: GenerationCall, outcome: Outcome, recorded: RecordedGeneration | None
    ) -> RecordedGeneration | None:
        if recorded is None:
            log.warning(
                "generation %s ended (%s) after the sweeper had settled it as abandoned",
                call.id,
                outcome.value,
            )
            return None
        observe(call, recorded)
        return recorded

    async def run(self) -> None:
        await self._stopped.wait()

    async def stop(self) -> None:
        self._stopped.set()
        while self._pending:
            await asyncio.wait(set(self._pending))


class Recording:
    """`async with` around a model call: on the way out, records the call with
    the outcome the way out implies (completed, failed, or cancelled when the
    caller went away) and lets any exception carry on."""

    def __init__(self, recorder: GenerationRecorder, call: GenerationCall) -> None:
        self.recorder = recorder
        self.call = call
        self.recorded: RecordedGeneration | None = None

    async def __aenter__(self) -> Recording:
        return self

    async def __aexit__(self, exc_type, exc, traceback) -> bool:
        if exc is None:
            outcome, error = Outcome.completed, None
        elif isinstance(exc, FabulaError):
            # The model failed, or the call was refused before it (quota,
            # billing unreachable).
            outcome, error = Outcome.failed, exc.message
        elif isinstance(exc, Exception):
            outcome, error = Outcome.failed, f"internal error ({type(exc).__name__})"
        else:
            # CancelledError, or GeneratorExit when a stream's consumer left.
            outcome, error = Outcome.cancelled, None
        try:
            self.recorded = await self.recorder.record(self.call, outcome, error)
        except Exception:
            if exc is None:
                raise
            # Already logged; the original exception is the one to propagate.
        if exc is None and self.recorded is None:
            # Settled as failed by the sweeper: billing will not count it, so
            # the caller must not get it as a result either.
            raise Unavailable("the generation outlived its deadline; retry")
        return False


class GenerationServicer(generation_pb2_grpc.GenerationServiceServicer):
    """Every model call: validate, record it as started while quota is
    reserved under its id, call the model once billing granted it, record the outcome and usage (whose event settles
    or releases the reservation)."""

    def __init__(
        self,
        provider: GenerationProvider,
        recorder: GenerationRecorder,
        meter: Meter,
        moderator: Moderator | None = None,
    ) -> None:
        self.provider = provider
        self.recorder = recorder
        self.meter = meter
        self.moderator = moderator or moderator_for(provider)

    async def _start(
        self, message: generation_pb2.GenerateRequest
    ) -> tuple[GenerationCall, asyncio.Future[None]]:
        """Record the call as started and reserve its quota, both at once (the
        two round trips overlap: nothing but the model call is left once the
        reservation is granted). Returns once the row is written, with the
        reservation under way: it is awaited inside the recording, so a
        refusal is recorded as a failed call that consumed nothing, and its
        event releases whatever billing may have granted after all."""
        # Invalid requests cost nothing and leave no record; nor does a
        # child-safe account's direction the moderation refuses.
        request = request_from_proto(message)
        if is_child_safe():
            await require_suitable(self.moderator, written_by_the_user(request))
        call = GenerationCall(
            request,
            self.provider,
            generation_id=requested_generation_id(message),
            # A caller of the previous release has reserved already: this call
            # settles that reservation rather than holding a second one.
            reservation_id=prior_reservation(message),
            delivery=delivery_from_proto(message),
        )
        reserving = self._reserve(call)
        try:
            # grpc.aio sends a call from a task of its own: one pass of the
            # loop puts the reservation on the wire before the row's own work
            # holds the loop, so the two round trips overlap (about 2 ms of
            # the first token on the bench).
            await asyncio.sleep(0)
            # From the row on, whatever fails, the generation ends with exactly
            # one usage event (which settles the reservation).
            await self.recorder.start(call)
        except BaseException as exc:
            self._drop_reservation(call, reserving, exc)
            raise
        return call, reserving

    def _reserve(self, call: GenerationCall) -> asyncio.Future[None]:
        """Reserve quota under the generation's id (billing answers a repeat
        with the same reservation, so a duplicate request holds nothing more).
        The request is under way when this returns; the future is done once
        billing granted it."""
        granting = (
            self.meter.reserve(call.request.user_id, call.reservation_id)
            if call.reservation_id == str(call.id)
            else None  # the previous release's caller reserved already
        )

        async def granted() -> None:
            if granting is not None:
                await granting
            call.reserved = True

        return asyncio.ensure_future(granted())

    def _drop_reservation(
        self, call: GenerationCall, reserving: asyncio.Future[None], row_error: BaseException
    ) -> None:
        """The started row was not written, so no usage event will settle the
        reservation made beside it. A duplicate id's reservation is the first
        call's: left alone. Otherwise a granted one is given back at once (the
        row may have committed unseen: billing settles each hold once); one
        still unknown is given back by billing's expiry, for which generation's
        record (LookupGenerations) knows no call under it."""
        if isinstance(row_error, AlreadyExists):
            abandon(reserving)
            return

        async def release_if_granted() -> None:
            with contextlib.suppress(Exception):
                await reserving
            if call.reserved:
                await self.meter.release(call.request.user_id, call.reservation_id)

        self.recorder.track(release_if_granted(), f"drop-reservation-{call.id}")

    def _response(
        self, call: GenerationCall, recorded: RecordedGeneration | None
    ) -> generation_pb2.GenerateResponse:
        assert recorded is not None
        return generation_pb2.GenerateResponse(
            generation_id=str(recorded.id),
            text=call.text,
            title=call.title,
            provider=self.provider.name,
            model=self.provider.model,
            usage=usage_to_proto(recorded),
            is_language_model=self.provider.is_language_model,
        )

    async def Generate(
        self, request: generation_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> generation_pb2.GenerateResponse:
        call, reserving = await self._start(request)
        async with self.recorder.recording(call) as recording:
            await reserving
            await complete_generation(call)
            await self._check_output(call)
        return self._response(call, recording.recorded)

    async def _check_output(self, call: GenerationCall) -> None:
        """A child-safe call's text is moderated before it is answered: a
        refusal fails the call (its tokens are paid, no generation counts)."""
        if is_child_safe():
            await require_suitable(self.moderator, {"story": f"{call.title}\n{call.text}"})

    async def GenerateStream(
        self, request: generation_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[generation_pb2.GenerateStreamEvent]:
        call, reserving = await self._start(request)
        async with self.recorder.recording(call) as recording:
            # A quota refusal ends the stream before its first event; the
            # model is never asked before billing granted the call.
            await reserving
            if is_child_safe():
                # Nothing reaches a child before the moderation has read it:
                # the whole text, checked, comes as one delta.
                await complete_generation(call)
                await self._check_output(call)
                yield generation_pb2.GenerateStreamEvent(
                    token=generation_pb2.TextDelta(text=call.text)
                )
            else:
                async with aclosing(stream_generation(call)) as deltas:
                    async for delta in deltas:
                        yield generation_pb2.GenerateStreamEvent(
                            token=generation_pb2.TextDelta(text=delta)
                        )
        yield generation_pb2.GenerateStreamEvent(done=self._response(call, recording.recorded))

    async def RenderPrompt(
        self, request: generation_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> generation_pb2.RenderedPrompt:
        """The messages Generate would send for the request: validated like
        Generate, nothing reserved, recorded or asked of the model."""
        prompt = build_prompt(request_from_proto(request))
        messages = prompt.messages()
        return generation_pb2.RenderedPrompt(
            messages=[
                generation_pb2.ChatMessage(role=message["role"], content=message["content"])
                for message in messages
            ],
            prompt_tokens=approximate_tokens(prompt.text),
        )

    async def LookupGenerations(
        self, request: generation_pb2.LookupGenerationsRequest, context: grpc.aio.ServicerContext
    ) -> generation_pb2.LookupGenerationsResponse:
        ids = list(request.ids)
        if len(ids) > MAX_LOOKUP_IDS:
            raise InvalidArgument(f"ids may hold at most {MAX_LOOKUP_IDS} ids")
        async with self.recorder.db.session_scope() as session:
            outcomes = await repository.outcomes_of(session, ids)
            # A job's hold (its id, or a retry's reservation) lasts while it
            # is queued or running.
            active_jobs, ended_jobs = await jobs_repository.active_ids(session, ids)
        for id in active_jobs:
            outcomes.setdefault(id, []).append(STARTED)
        for id in ended_jobs:
            outcomes.setdefault(id, []).append(Outcome.completed.value)
        return generation_pb2.LookupGenerationsResponse(
            generations=[
                generation_pb2.GenerationLookup(id=id, state=lookup_state(outcomes.get(id, [])))
                for id in ids
            ]
        )


MAX_LOOKUP_IDS = 1000


def usage_to_proto(recorded: RecordedGeneration) -> generation_pb2.Usage:
    return generation_pb2.Usage(
        prompt_tokens=recorded.usage.prompt_tokens,
        completion_tokens=recorded.usage.completion_tokens,
        estimated=recorded.usage.estimated,
        cost=to_money(recorded.cost_usd),
        cost_usd=format_usd(recorded.cost_usd),  # for the previous release's callers
    )


def lookup_state(outcomes: list[str]) -> generation_pb2.GenerationState:
    """UNKNOWN for no generation, STARTED while any is, else FINISHED."""
    if not outcomes:
        return generation_pb2.GENERATION_STATE_UNKNOWN
    if STARTED in outcomes:
        return generation_pb2.GENERATION_STATE_STARTED
    return generation_pb2.GENERATION_STATE_FINISHED
