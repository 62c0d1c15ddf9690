"""A council message as JSON or as Server-Sent Events, with the helpers of
stories' continue stream (stories/streaming.py): the first event (the stored
question) is awaited before the HTTP response starts, so a refusal (unknown
conversation, busy, bad input, service down) is an ordinary problem response;
later errors travel as `event: error`."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import grpc
from fabula.stories.v1 import conversations_pb2
from fastapi.sse import format_sse_event
from starlette.responses import StreamingResponse

from fabula_gateway.conversations.mappers import council_event_data, message_from_proto
from fabula_gateway.conversations.schemas import ClarifyingQuestions, Message
from fabula_gateway.problems import (
    INTERNAL_ERROR,
    SERVICE_UNAVAILABLE,
    ProblemError,
    retry_after,
)
from fabula_gateway.stories.streaming import (
    EVENT_STREAM,
    error_event,
    problem_for_stream_error,
)

log = logging.getLogger(__name__)

_ENDED_WITHOUT_ANSWER = "The stories service ended without the council's answer."


def _ends(event: conversations_pb2.ConversationEvent) -> bool:
    """The last event of a message: the answer, or the chairman's questions."""
    return event.HasField("questions") or (
        event.HasField("message") and event.message.role == "assistant"
    )


class CouncilStream:
    """A started SendMessage or AnswerFollowUp call whose first event has arrived."""

    def __init__(self, call: grpc.aio.UnaryStreamCall, events, first) -> None:
        self._call = call
        self._events = events
        self._first = first

    @classmethod
    async def start(cls, call: grpc.aio.UnaryStreamCall) -> CouncilStream:
        """Await the first event; gRPC errors propagate (answered as a problem)."""
        events = aiter(call)
        try:
            first = await anext(events, None)
        except BaseException:
            call.cancel()
            raise
        return cls(call, events, first)

    async def collect(self) -> Message | ClarifyingQuestions:
        """The stored answer (or the chairman's questions): the JSON answer."""
        result: Message | ClarifyingQuestions | None = None
        try:
            event = self._first
            while event is not None:
                if event.HasField("questions"):
                    result = ClarifyingQuestions(questions=list(event.questions.questions))
                elif _ends(event):
                    result = message_from_proto(event.message)
                event = await anext(self._events, None)
        finally:
            self._call.cancel()  # A no-op once the call has finished.
        if result is None:
            raise ProblemError(INTERNAL_ERROR, _ENDED_WITHOUT_ANSWER)
        return result

    def response(self, must_end: asyncio.Event) -> StreamingResponse:
        return StreamingResponse(
            self._sse(must_end),
            media_type=EVENT_STREAM,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def _next(self, ending: asyncio.Future):
        reading = asyncio.ensure_future(anext(self._events, None))
        try:
            await asyncio.wait((reading, ending), return_when=asyncio.FIRST_COMPLETED)
            if reading.done():
                return reading.result()
        finally:
            reading.cancel()
        raise ProblemError(
            SERVICE_UNAVAILABLE,
            "The gateway is shutting down; the council's answer is stored regardless: "
            "fetch the conversation.",
            headers=retry_after(None),
        )

    async def _sse(self, must_end: asyncio.Event) -> AsyncIterator[bytes]:
        ended = False
        ending = asyncio.ensure_future(must_end.wait())
        try:
            event = self._first
            while event is not None:
                for name, data in _sse_data(event):
                    yield format_sse_event(
                        event=name, data_str=json.dumps(data, ensure_ascii=False)
                    )
                ended = ended or _ends(event)
                event = await self._next(ending)
            if not ended:
                raise ProblemError(INTERNAL_ERROR, _ENDED_WITHOUT_ANSWER)
        except Exception as exc:
            problem = problem_for_stream_error(exc)
            if ended:
                log.warning("council stream failed after its answer: %r", exc)
            else:
                yield error_event(problem)
        finally:
            ending.cancel()
            # A client that left: release the call; the stories service
            # stores (and bills) the message regardless.
            self._call.cancel()


def _sse_data(event: conversations_pb2.ConversationEvent) -> list[tuple[str, dict]]:
    which = event.WhichOneof("event")
    if which == "message":
        return [("message", message_from_proto(event.message).model_dump(mode="json"))]
    if which == "questions":
        return [("questions", {"questions": list(event.questions.questions)})]
    if which == "council":
        data = council_event_data(event.council)
        return [data] if data is not None else []
    return []
