"""gRPC edge of fabula.generation.v1.GenerationService: proto <-> domain, and
the transactions that record each model call."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing

import grpc
from fabula.generation.v1 import generation_pb2, generation_pb2_grpc
from fabula_common.db import Database
from fabula_common.errors import InvalidArgument, UpstreamError
from fabula_common.money import format_usd

from fabula_generation.generations.domain import (
    GenerationKind,
    GenerationRequest,
    Outcome,
    StoryContext,
)
from fabula_generation.generations.pricing import PriceTable
from fabula_generation.generations.service import (
    GenerationCall,
    RecordedGeneration,
    complete_generation,
    observe,
    record_generation,
    stream_generation,
    validate_request,
)
from fabula_generation.providers import GenerationProvider

log = logging.getLogger(__name__)

_KINDS = {
    generation_pb2.GENERATION_KIND_OPENING: GenerationKind.opening,
    generation_pb2.GENERATION_KIND_CONTINUATION: GenerationKind.continuation,
    generation_pb2.GENERATION_KIND_ENDING: GenerationKind.ending,
}


def request_from_proto(message: generation_pb2.GenerateRequest) -> GenerationRequest:
    kind = _KINDS.get(message.kind)
    if kind is None:
        raise InvalidArgument("kind must be opening, continuation or ending")
    story = message.story
    request = GenerationRequest(
        user_id=message.user_id,
        story_id=message.story_id,
        reservation_id=message.reservation_id,
        kind=kind,
        story=StoryContext(
            genre=story.genre,
            title=story.title,
            characters=tuple(story.characters),
            opening_line=story.opening_line,
            previous_segments=tuple(story.previous_segments),
        ),
        direction=message.direction,
        want_title=message.want_title,
    )
    validate_request(request)
    return request


class GenerationRecorder:
    """Records model calls, each in a task of its own.

    The caller awaits the record through asyncio.shield, so a call abandoned
    midway (its handler cancelled) still gets its record written. As a
    background worker of the app, stop() waits for records still being
    written, before the outbox relay's last pass publishes their events.
    """

    def __init__(self, db: Database, prices: PriceTable, subject: str) -> None:
        self.db = db
        self.prices = prices
        self.subject = subject
        self._pending: set[asyncio.Task] = set()
        self._stopped = asyncio.Event()

    def recording(self, call: GenerationCall) -> Recording:
        return Recording(self, call)

    async def record(
        self, call: GenerationCall, outcome: Outcome, error: str | None
    ) -> RecordedGeneration:
        task = asyncio.create_task(
            self._write(call, outcome, error), name=f"record-generation-{call.id}"
        )
        self._pending.add(task)
        task.add_done_callback(self._forget)
        return await asyncio.shield(task)

    def _forget(self, task: asyncio.Task) -> None:
        self._pending.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a failure was logged in _write already

    async def _write(
        self, call: GenerationCall, outcome: Outcome, error: str | None
    ) -> RecordedGeneration:
        try:
            async with self.db.session_scope() as session:
                recorded = await record_generation(
                    session, call, outcome, error=error, prices=self.prices, subject=self.subject
                )
        except Exception:
            # Logged here: when the caller has gone, nobody else sees it.
            log.exception("could not record generation %s (%s)", call.id, outcome.value)
            raise
        observe(call, recorded)
        return recorded

    async def run(self) -> None:
        await self._stopped.wait()

    async def stop(self) -> None:
        self._stopped.set()
        if self._pending:
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
        elif isinstance(exc, UpstreamError):
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
        return False


class GenerationServicer(generation_pb2_grpc.GenerationServiceServicer):
    def __init__(self, provider: GenerationProvider, recorder: GenerationRecorder) -> None:
        self.provider = provider
        self.recorder = recorder

    def _start(self, message: generation_pb2.GenerateRequest) -> GenerationCall:
        return GenerationCall(request_from_proto(message), self.provider)

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
            usage=generation_pb2.Usage(
                prompt_tokens=recorded.usage.prompt_tokens,
                completion_tokens=recorded.usage.completion_tokens,
                estimated=recorded.usage.estimated,
                cost_usd=format_usd(recorded.cost_usd),
            ),
            is_language_model=self.provider.is_language_model,
        )

    async def Generate(
        self, request: generation_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> generation_pb2.GenerateResponse:
        call = self._start(request)
        async with self.recorder.recording(call) as recording:
            await complete_generation(call)
        return self._response(call, recording.recorded)

    async def GenerateStream(
        self, request: generation_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[generation_pb2.GenerateStreamEvent]:
        call = self._start(request)
        async with self.recorder.recording(call) as recording:
            async with aclosing(stream_generation(call)) as deltas:
                async for delta in deltas:
                    yield generation_pb2.GenerateStreamEvent(
                        token=generation_pb2.TextDelta(text=delta)
                    )
        yield generation_pb2.GenerateStreamEvent(done=self._response(call, recording.recorded))
