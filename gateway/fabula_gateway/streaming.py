"""Server-Sent Events from a gRPC server stream (a story's continuation, a
council message), shared by every streaming route.

The gRPC stream's first event is awaited before the HTTP response starts, so
an error that happens before any result (unknown resource, busy, quota,
service down) is an ordinary problem response with its real status. Errors
after that can only travel inside the stream, as `event: error`; so do the
ends no client should take for a finished stream: the service going away
mid-stream, the gateway shutting down before the result came, and a stream
that goes silent for longer than its idle limit.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, Self, TypeVar

import grpc
from fastapi.sse import format_sse_event
from starlette.responses import StreamingResponse

from fabula_gateway.problems import (
    INTERNAL_ERROR,
    SERVICE_UNAVAILABLE,
    ProblemError,
    problem_for_rpc_error,
    retry_after,
)

log = logging.getLogger(__name__)

EVENT_STREAM = "text/event-stream"

E = TypeVar("E")
R = TypeVar("R")


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


def sse_json(name: str, data: Any) -> bytes:
    return format_sse_event(event=name, data_str=json.dumps(data, ensure_ascii=False))


class GrpcEventStream(Generic[E]):
    """A started server-streaming call whose first event has arrived.

    Subclasses say which event ends the stream (`ends`), how an event reads
    as SSE (`sse`), and what to tell when the stream ends too early."""

    # The problem details of a stream that ended without its result, and of
    # one the gateway's shutdown cut short.
    ended_without_result = "The service ended without a result."
    cut_by_shutdown = "The gateway is shutting down."

    def __init__(
        self,
        call: grpc.aio.UnaryStreamCall,
        events: AsyncIterator[E],
        first: E | None,
        idle_seconds: float | None,
    ) -> None:
        self._call = call
        self._events = events
        self._first = first
        self._idle_seconds = idle_seconds

    @classmethod
    async def start(cls, call: grpc.aio.UnaryStreamCall, *, idle_seconds: float | None = None) -> Self:
        """Await the first event; gRPC errors propagate (the caller answers
        with a problem). With `idle_seconds`, the SSE stream gives up (an
        `error` event) when no event comes for that long."""
        events = aiter(call)
        try:
            first = await anext(events, None)
        except BaseException:
            call.cancel()
            raise
        return cls(call, events, first, idle_seconds)

    # --- What subclasses say -------------------------------------------------------

    def ends(self, event: E) -> bool:
        raise NotImplementedError

    def sse(self, event: E) -> list[bytes]:
        raise NotImplementedError

    def idle_problem(self) -> ProblemError:
        return ProblemError(
            SERVICE_UNAVAILABLE,
            f"Nothing came for {self._idle_seconds:g} seconds.",
            headers=retry_after(None),
        )

    # --- JSON ------------------------------------------------------------------------

    async def collect(self, result_of: Callable[[E], R | None]) -> R:
        """The last result `result_of` finds in the events (the JSON answer),
        read to the end of the stream."""
        result = None
        try:
            async for event in self._all_events():
                found = result_of(event)
                if found is not None:
                    result = found
        finally:
            self._call.cancel()  # A no-op once the call has finished.
        if result is None:
            raise ProblemError(INTERNAL_ERROR, self.ended_without_result)
        return result

    # --- Server-Sent Events -----------------------------------------------------------

    def response(self, must_end: asyncio.Event) -> StreamingResponse:
        """The events as SSE; when `must_end` is set (shutdown) before the
        result came, the stream ends with a 503 `error` event."""
        return StreamingResponse(
            self._sse(must_end),
            media_type=EVENT_STREAM,
            headers={
                "Cache-Control": "no-cache",
                # Proxies such as nginx would otherwise hold the text back.
                "X-Accel-Buffering": "no",
            },
        )

    async def _all_events(self, must_end: asyncio.Future | None = None) -> AsyncIterator[E]:
        # Read to the end of the stream, past the result, so the call ends OK
        # (not CANCELLED) and a late error is seen.
        event = self._first
        while event is not None:
            yield event
            event = await self._next_event(must_end)

    async def _next_event(self, must_end: asyncio.Future | None) -> E | None:
        if must_end is None and self._idle_seconds is None:
            return await anext(self._events, None)
        reading = asyncio.ensure_future(anext(self._events, None))
        waiting = {reading} if must_end is None else {reading, must_end}
        try:
            await asyncio.wait(
                waiting, timeout=self._idle_seconds, return_when=asyncio.FIRST_COMPLETED
            )
            if reading.done():
                return reading.result()
        finally:
            reading.cancel()  # A no-op once done.
        if must_end is not None and must_end.done():
            raise ProblemError(SERVICE_UNAVAILABLE, self.cut_by_shutdown, headers=retry_after(None))
        raise self.idle_problem()

    async def _sse(self, must_end: asyncio.Event) -> AsyncIterator[bytes]:
        ended = False
        ending = asyncio.ensure_future(must_end.wait())
        try:
            async for event in self._all_events(ending):
                for frame in self.sse(event):
                    yield frame
                ended = ended or self.ends(event)
            if not ended:
                raise ProblemError(INTERNAL_ERROR, self.ended_without_result)
        except Exception as exc:
            # The 200 has been sent: the error can only travel as an event,
            # and only when no result did (one or the other ends a stream).
            problem = problem_for_stream_error(exc)
            if ended:
                log.warning("stream failed after its result: %r", exc)
            else:
                yield error_event(problem)
        finally:
            ending.cancel()
            # When the client went away: release the call. The service
            # finishes and stores the result regardless.
            self._call.cancel()


def problem_for_stream_error(exc: Exception) -> ProblemError:
    if isinstance(exc, grpc.aio.AioRpcError):
        log.warning("stream failed: %s %s", exc.code().name, exc.details())
        if exc.code() == grpc.StatusCode.CANCELLED:
            # Not by us (we cancel only after the stream): the service
            # cancelled it, as it does when it shuts down.
            return ProblemError(SERVICE_UNAVAILABLE, headers=retry_after(None))
        return problem_for_rpc_error(exc)
    if isinstance(exc, ProblemError):
        log.error("stream failed: %s", exc.detail)
        return exc
    log.exception("stream failed", exc_info=exc)
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
