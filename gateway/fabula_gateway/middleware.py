"""Pure ASGI middleware: request id + access log + last-resort 500, the limit
on requests served at once, and the body limits (size, read time).

Pure ASGI (not BaseHTTPMiddleware) so the request id context variable set
here is the one the endpoint, the gRPC client interceptor and streaming
responses all see.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time

from fabula_common.context import new_request_id, request_id_var
from fabula_common.messaging.headers import REQUEST_ID_HEADER
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fabula_gateway import metrics
from fabula_gateway.problems import (
    CONTENT_TOO_LARGE,
    INTERNAL_ERROR,
    REQUEST_TIMEOUT,
    SERVICE_UNAVAILABLE,
    ProblemError,
    retry_after,
)

log = logging.getLogger(__name__)
access_log = logging.getLogger("fabula_gateway.access")

_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def accept_request_id(value: str | None) -> str:
    """The caller's request id when it is safe to log and echo, else a new one."""
    if value is not None and _SANE_REQUEST_ID.fullmatch(value):
        return value
    return new_request_id()


# A share link's token is its only credential: logs show just its start.
_SHARE_TOKEN = re.compile(r"^(/v1/shared/[^/]{0,4})[^/]*")


def loggable_path(path: str) -> str:
    """The request path as logs and traces may show it."""
    return _SHARE_TOKEN.sub(r"\1…", path, count=1)


class RequestContextMiddleware:
    """Outermost layer: every response, even a 500, carries X-Request-ID and
    is access-logged and counted."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = accept_request_id(Headers(scope=scope).get(REQUEST_ID_HEADER))
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status: int | None = None

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception:
            log.exception(
                "unhandled error in %s %s", scope["method"], loggable_path(scope["path"])
            )
            if status is not None:
                raise  # The response has begun; the server must drop the connection.
            await ProblemError(INTERNAL_ERROR).to_response()(scope, receive, send_with_request_id)
        finally:
            elapsed = time.perf_counter() - started
            duration_ms = round(elapsed * 1000, 1)
            if status is not None:
                # The router leaves the matched route in the scope.
                route = getattr(scope.get("route"), "path", None)
                metrics.observe(scope["method"], route, status, elapsed)
            # DEBUG unless the gateway failed (see ACCESS_LOG_LEVEL): a line
            # per request costs a busy gateway dearly.
            level = logging.DEBUG if status is not None and status < 500 else logging.INFO
            if access_log.isEnabledFor(level):
                path = loggable_path(scope["path"])
                access_log.log(
                    level,
                    "%s %s %s %.1fms",
                    scope["method"],
                    path,
                    status,
                    duration_ms,
                    extra={
                        "method": scope["method"],
                        "path": path,
                        "status": status,
                        "duration_ms": duration_ms,
                    },
                )
            request_id_var.reset(token)


class ConcurrencyLimitMiddleware:
    """Answers 503 problem+json with Retry-After, at once, to requests beyond
    `limit` served at the same time by this process (event streams included),
    so a flood queues nowhere and a load balancer can retry elsewhere."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            log.warning("refused: %d requests in flight", self.in_flight)
            problem = ProblemError(
                SERVICE_UNAVAILABLE,
                "The gateway is serving as many requests as it can; retry later.",
                # Frees the connection too, and leaves no request body unread.
                headers={**retry_after(None), "Connection": "close"},
            )
            await problem.to_response()(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


class _BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Refuses request bodies over `max_body_bytes` with 413 problem+json, and
    bodies not received within `timeout_seconds` with 408.

    A declared Content-Length over the limit is refused before reading; a
    body without one (chunked) is read and counted. The body is buffered
    (it is small by definition) and replayed, so the limits hold no matter
    how the endpoint reads it.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        timeout_seconds: float,
        streamed_prefixes: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.timeout_seconds = timeout_seconds
        # Paths whose endpoint streams the body on and enforces its own limits
        # (signed file uploads: media caps the size, the call has a deadline).
        self.streamed_prefixes = streamed_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.streamed_prefixes):
            await self.app(scope, receive, send)
            return

        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is None and "transfer-encoding" not in headers:
            # No body at all (HTTP/1.1 has no other way to send one): most
            # GETs. Nothing to bound, buffer or replay.
            await self.app(scope, receive, send)
            return
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._refuse(scope, receive, send, self._too_large())
            return

        try:
            async with asyncio.timeout(self.timeout_seconds):
                body = await self._read_body(receive)
        except _BodyTooLarge:
            await self._refuse(scope, receive, send, self._too_large())
            return
        except TimeoutError:
            log.warning("request body not received within %ss", self.timeout_seconds)
            problem = ProblemError(
                REQUEST_TIMEOUT,
                f"The request body was not received within {self.timeout_seconds:g} seconds.",
            )
            await self._refuse(scope, receive, send, problem)
            return
        if body is None:
            return  # The client is gone; nobody to answer.

        buffered: Message | None = {"type": "http.request", "body": body, "more_body": False}

        async def replay() -> Message:
            nonlocal buffered
            if buffered is not None:
                message, buffered = buffered, None
                return message
            # After the body, only a disconnect can arrive (streaming responses wait for it).
            return await receive()

        await self.app(scope, replay, send)

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body, or None when the client disconnected first."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _too_large(self) -> ProblemError:
        return ProblemError(
            CONTENT_TOO_LARGE, f"The request body is larger than {self.max_body_bytes} bytes."
        )

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, problem: ProblemError
    ) -> None:
        # The unread rest of the body makes the connection unusable.
        problem.headers["Connection"] = "close"
        await problem.to_response()(scope, receive, send)
