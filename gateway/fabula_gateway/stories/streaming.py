"""Server-Sent Events for continuing a story.

The gRPC stream's first event is awaited before the HTTP response starts, so
an error that happens before any text (unknown story, story complete, quota,
service down) is an ordinary problem response with its real status. Errors
after that can only travel inside the stream, as `event: error`; so do the
ends no client should take for a finished stream: the stories service going
away mid-stream, and the gateway shutting down before the segment came.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import grpc
from fabula.stories.v1 import stories_pb2
from fastapi.sse import format_sse_event
from starlette.responses import StreamingResponse

from fabula_gateway.problems import (
    INTERNAL_ERROR,
    SERVICE_UNAVAILABLE,
    ProblemError,
    problem_for_rpc_error,
    retry_after,
)
from fabula_gateway.stories.mappers import segment_from_proto
from fabula_gateway.stories.schemas import Segment

log = logging.getLogger(__name__)

EVENT_STREAM = "text/event-stream"


def wants_event_stream(accept: str | None) -> bool:
    """True when the Accept header prefers text/event-stream to JSON."""
    if not accept:
        return False
    quality: dict[str, float] = {}
    for media_range in accept.split(","):
        media_type, *params = (part.strip() for part in media_range.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        quality[media_type.lower()] = max(q, quality.get(media_type.lower(), 0.0))
    stream_q = quality.get(EVENT_STREAM, 0.0)
    return stream_q > 0 and stream_q >= quality.get("application/json", 0.0)


class ContinueStream:
    """A started ContinueStory call whose first event has arrived."""

    def __init__(
        self,
        call: grpc.aio.UnaryStreamCall,
        events: AsyncIterator[stories_pb2.ContinueStoryEvent],
        first: stories_pb2.ContinueStoryEvent | None,
    ) -> None:
        self._call = call
        self._events = events
        self._first = first

    @classmethod
    async def start(cls, call: grpc.aio.UnaryStreamCall) -> ContinueStream:
        """Await the first event; gRPC errors propagate (the caller answers with a problem)."""
        events = aiter(call)
        try:
            first = await anext(events, None)
        except BaseException:
            call.cancel()
            raise
        return cls(call, events, first)

    async def collect(self) -> Segment:
        """The stored segment, ignoring the text deltas (the JSON answer)."""
        segment = None
        try:
            async for event in self._all_events():
                if event.HasField("segment"):
                    segment = segment_from_proto(event.segment)
        finally:
            self._call.cancel()  # A no-op once the call has finished.
        if segment is None:
            raise ProblemError(INTERNAL_ERROR, "The story service ended without a segment.")
        return segment

    def response(self, must_end: asyncio.Event) -> StreamingResponse:
        """The events as SSE; when `must_end` is set (shutdown) before the
        segment came, the stream ends with a 503 `error` event."""
        return StreamingResponse(
            self._sse(must_end),
            media_type=EVENT_STREAM,
            headers={
                "Cache-Control": "no-cache",
                # Proxies such as nginx would otherwise hold the text back.
                "X-Accel-Buffering": "no",
            },
        )

    async def _all_events(
        self, must_end: asyncio.Future | None = None
    ) -> AsyncIterator[stories_pb2.ContinueStoryEvent]:
        # Read to the end of the stream, past the segment, so the call ends OK
        # (not CANCELLED) and a late error is seen.
        event = self._first
        while event is not None:
            yield event
            event = await self._next_event(must_end)

    async def _next_event(
        self, must_end: asyncio.Future | None
    ) -> stories_pb2.ContinueStoryEvent | None:
        if must_end is None:
            return await anext(self._events, None)
        reading = asyncio.ensure_future(anext(self._events, None))
        try:
            await asyncio.wait((reading, must_end), return_when=asyncio.FIRST_COMPLETED)
            if reading.done():
                return reading.result()
        finally:
            reading.cancel()  # A no-op once done.
        raise ProblemError(
            SERVICE_UNAVAILABLE,
            "The gateway is shutting down; the story service stores the segment "
            "regardless: fetch the story before continuing it again.",
            headers=retry_after(None),
        )

    async def _sse(self, must_end: asyncio.Event) -> AsyncIterator[bytes]:
        segment_sent = False
        ending = asyncio.ensure_future(must_end.wait())
        try:
            async for event in self._all_events(ending):
                if event.HasField("token"):
                    text = json.dumps({"text": event.token.text}, ensure_ascii=False)
                    yield format_sse_event(event="token", data_str=text)
                elif event.HasField("segment"):
                    segment = segment_from_proto(event.segment)
                    yield format_sse_event(event="segment", data_str=segment.model_dump_json())
                    segment_sent = True
            if not segment_sent:
                raise ProblemError(INTERNAL_ERROR, "The story service ended without a segment.")
        except Exception as exc:
            # The 200 has been sent: the error can only travel as an event,
            # and only when no segment did (one or the other ends a stream).
            problem = problem_for_stream_error(exc)
            if segment_sent:
                log.warning("continue stream failed after its segment: %r", exc)
            else:
                yield error_event(problem)
        finally:
            ending.cancel()
            # When the client went away: release the call. The stories service
            # finishes and stores the segment regardless.
            self._call.cancel()


def problem_for_stream_error(exc: Exception) -> ProblemError:
    if isinstance(exc, grpc.aio.AioRpcError):
        log.warning("continue stream failed: %s %s", exc.code().name, exc.details())
        if exc.code() == grpc.StatusCode.CANCELLED:
            # Not by us (we cancel only after the stream): the stories service
            # cancelled it, as it does when it shuts down.
            return ProblemError(SERVICE_UNAVAILABLE, headers=retry_after(None))
        return problem_for_rpc_error(exc)
    if isinstance(exc, ProblemError):
        log.error("continue stream failed: %s", exc.detail)
        return exc
    log.exception("continue stream failed", exc_info=exc)
    return ProblemError(INTERNAL_ERROR)


def error_event(problem: ProblemError) -> bytes:
    """The problem as an `error` event. Its Retry-After (headers are long sent)
    travels as the document's `retry_after` member and as SSE `retry` (ms)."""
    wait = problem.headers.get("Retry-After")
    if wait is not None:
        problem.extensions.setdefault("retry_after", int(wait))
    return format_sse_event(
        event="error",
        data_str=problem.to_problem().model_dump_json(exclude_none=True),
        retry=int(wait) * 1000 if wait is not None else None,
    )
