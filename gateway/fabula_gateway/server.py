"""The HTTP server: uvicorn, plus the connection limits it lacks.

uvicorn bounds idle keep-alive connections (`timeout_keep_alive`) but not the
size of a request head (httptools buffers any header whole), nor the time a
head may take to arrive (slowloris), nor the number of open connections.
`GuardedHttpProtocol` adds those three to uvicorn's httptools protocol; the
body read time and the number of requests served at once are bounded by the
app's middleware (middleware.py).

`GatewayServer` tells open event streams when the shutdown grace is about to
run out, so they end with an `error` event rather than being cut silently.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from typing import ClassVar

import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from fabula_gateway.problems import (
    HEADERS_TOO_LARGE,
    PROBLEM_MEDIA_TYPE,
    REQUEST_TIMEOUT,
    SERVICE_UNAVAILABLE,
    ProblemError,
    ProblemType,
    retry_after,
)

log = logging.getLogger(__name__)

# Time a stream is left to send its error event before uvicorn cancels it.
STREAM_END_MARGIN_SECONDS = 0.5


@dataclass(frozen=True)
class ConnectionLimits:
    max_header_bytes: int
    header_timeout_seconds: float
    max_connections: int


class GuardedHttpProtocol(HttpToolsProtocol):
    """One HTTP/1.1 connection, as uvicorn serves it, with a request head bounded
    in size and time and a cap on open connections. Subclassed per server by
    `protocol_with(limits)`."""

    limits: ClassVar[ConnectionLimits]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        too_many = len(self.connections) >= self.limits.max_connections
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._read_bytes = 0  # of the read being parsed
        if too_many:
            self._refuse(
                SERVICE_UNAVAILABLE, "Too many open connections; retry later.", retry_after(None)
            )
            return
        # Also bounds a connection that never sends anything.
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_received()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._read_bytes = len(data)
        super().data_received(data)
        if self._head_timer is None or self.transport.is_closing():
            return
        # Still inside a head: all of this chunk counts (httptools keeps it).
        self._head_bytes += len(data)
        if self._head_bytes > self.limits.max_header_bytes:
            self._refuse(
                HEADERS_TOO_LARGE,
                f"The request line and headers exceed {self.limits.max_header_bytes} bytes.",
            )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_timer is None:  # a later request on a kept-alive connection
            self._await_head()

    def on_headers_complete(self) -> None:
        self._head_received()
        # A head that arrived in one read was parsed before data_received
        # could count it. The head is at most what arrived for it, this read
        # included; only when that is over the limit is what the parser kept
        # measured (most heads are far below it: no work per request).
        arrived = self._head_bytes + self._read_bytes
        if arrived > self.limits.max_header_bytes and self._parsed_head_bytes() > (
            self.limits.max_header_bytes
        ):
            self._refuse(
                HEADERS_TOO_LARGE,
                f"The request line and headers exceed {self.limits.max_header_bytes} bytes.",
            )
            return  # no request cycle: the app never sees it
        super().on_headers_complete()

    def _parsed_head_bytes(self) -> int:
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    # The rest of a refused request's bytes may still be parsed: ignore them.
    def on_body(self, body: bytes) -> None:
        if not self.transport.is_closing():
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self.transport.is_closing():
            super().on_message_complete()

    def _await_head(self) -> None:
        self._head_bytes = 0
        self._head_timer = self.loop.call_later(
            self.limits.header_timeout_seconds, self._head_too_slow
        )

    def _head_received(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._head_bytes == 0:
            self.transport.close()  # Opened and never said a word: nobody to answer.
            return
        self._refuse(REQUEST_TIMEOUT, "The request headers were not received in time.")

    def _refuse(
        self, kind: ProblemType, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        """Answer with a problem document and close, without involving the app."""
        self._head_received()
        log.warning("%s (%s)", detail, kind.status)
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head behind a response still being sent: no room to answer.
            self.transport.close()
            return
        body = ProblemError(kind, detail).to_problem().model_dump_json(exclude_none=True).encode()
        head = [
            STATUS_LINE[kind.status],
            f"content-type: {PROBLEM_MEDIA_TYPE}\r\n".encode(),
            f"content-length: {len(body)}\r\n".encode(),
            *(f"{name}: {value}\r\n".encode() for name, value in (headers or {}).items()),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()


def protocol_with(limits: ConnectionLimits) -> type[GuardedHttpProtocol]:
    """The protocol class uvicorn instantiates per connection, with these limits."""
    return type("GuardedHttpProtocol", (GuardedHttpProtocol,), {"limits": limits})


class GatewayServer(uvicorn.Server):
    """uvicorn's server; on shutdown, sets `streams_must_end` shortly before the
    grace period runs out, so open streams end with an error event of their own."""

    def __init__(self, config: uvicorn.Config, streams_must_end: asyncio.Event) -> None:
        super().__init__(config)
        self.streams_must_end = streams_must_end

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        grace = self.config.timeout_graceful_shutdown or 0
        timer = asyncio.get_running_loop().call_later(
            max(0.0, grace - STREAM_END_MARGIN_SECONDS), self.streams_must_end.set
        )
        try:
            await super().shutdown(sockets)
        finally:
            timer.cancel()
