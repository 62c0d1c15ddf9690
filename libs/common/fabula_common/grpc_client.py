"""Outbound gRPC channels: every call carries the request id and a deadline.

The deadline is the caller's own timeout, else the configured default, and
never later than the deadline of the incoming call being served.

Channels balance per call, not per connection: the target is resolved by DNS
(`dns:///host:port`; a headless Kubernetes Service answers with every pod's
address) and calls go round robin over every address that is up. Servers cap
the age of a connection (GRPC_MAX_CONNECTION_AGE_SECONDS), so a channel
re-resolves and picks up pods added since it connected.
"""

from __future__ import annotations

import json
from typing import Any

import grpc

from fabula_common.context import (
    CHILD_SAFE_HEADER,
    current_request_id,
    is_child_safe,
    remaining_time,
)
from fabula_common.messaging.headers import REQUEST_ID_HEADER


def _with_request_id(metadata: Any) -> Any:
    """The call's metadata plus the current request id (a caller's own wins)
    and, for a child-safe request, the child-safe mark."""
    request_id = current_request_id()
    if is_child_safe():
        metadata = (*(metadata or ()), (CHILD_SAFE_HEADER, "1"))
    if not request_id:
        return metadata
    if metadata is None:
        return ((REQUEST_ID_HEADER, request_id),)
    if any(key == REQUEST_ID_HEADER for key, _ in metadata):
        return metadata
    return (*metadata, (REQUEST_ID_HEADER, request_id))


class _WithContext:
    """A method of a stub: calls it with the request id and the deadline.
    A wrapper rather than a grpc.aio client interceptor, which costs every
    call an extra task and call object (a tenth of a read's gateway CPU)."""

    __slots__ = ("_method", "_default_timeout")

    def __init__(self, method: Any, default_timeout: float) -> None:
        self._method = method
        self._default_timeout = default_timeout

    def __call__(self, request: Any, *, timeout: float | None = None, metadata: Any = None,
                 **kwargs: Any) -> Any:
        return self._method(
            request,
            timeout=remaining_time(self._default_timeout if timeout is None else timeout),
            metadata=_with_request_id(metadata),
            **kwargs,
        )


class ContextChannel:
    """A grpc.aio channel whose calls (what the stubs make; bidirectional
    streams aside) carry the request id and a deadline; anything else is the channel's."""

    def __init__(self, channel: grpc.aio.Channel, default_timeout: float) -> None:
        self._channel = channel
        self._default_timeout = default_timeout

    def unary_unary(self, *args: Any, **kwargs: Any) -> _WithContext:
        return _WithContext(self._channel.unary_unary(*args, **kwargs), self._default_timeout)

    def unary_stream(self, *args: Any, **kwargs: Any) -> _WithContext:
        return _WithContext(self._channel.unary_stream(*args, **kwargs), self._default_timeout)

    def stream_unary(self, *args: Any, **kwargs: Any) -> _WithContext:
        # The request is an iterator of messages (e.g. an upload's chunks).
        return _WithContext(self._channel.stream_unary(*args, **kwargs), self._default_timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._channel, name)

    async def __aenter__(self) -> ContextChannel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._channel.close()


# Every address the name resolves to gets a connection; calls rotate over the
# ready ones. With none ready the channel fails calls at once (UNAVAILABLE)
# rather than queueing them.
ROUND_ROBIN_SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})

# How long one connection attempt may take, TCP and HTTP/2 handshake together.
# gRPC's default is 20 s: a peer that accepts TCP but never answers would hold
# every call made meanwhile until its own deadline.
CONNECT_TIMEOUT_MS = 1_000


# Every connection is pinged every KEEPALIVE_TIME_MS, idle or not, and given
# up if the answer takes longer than KEEPALIVE_TIMEOUT_MS. A peer that is hung
# (frozen, swapped out, stuck in the kernel) keeps its TCP connection open and
# answers nothing: without this, every call to it would wait out its whole
# deadline for as long as it stays hung. Once the ping fails, the connection is
# dropped, calls in flight fail UNAVAILABLE, the reconnection fails within the
# connect timeout, and later calls fail at once until the peer answers again.
KEEPALIVE_TIME_MS = 5_000
KEEPALIVE_TIMEOUT_MS = 2_000
# What a server needs to accept those pings: gRPC servers otherwise allow one
# ping per 5 minutes on a connection without calls and answer more with a
# GOAWAY "too_many_pings". Half the interval, so timer jitter never counts.
SERVER_KEEPALIVE_OPTIONS = [
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", KEEPALIVE_TIME_MS // 2),
]

_RESOLVER_SCHEMES = ("dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:", "vsock:")


def channel_target(address: str) -> str:
    """`host:port` as a DNS target (IP literals, loopback included, resolve to
    themselves); an address that already names a resolver (`dns:///...`,
    `ipv4:...`, `unix:...`) is kept as it is."""
    if address.startswith(_RESOLVER_SCHEMES):
        return address
    return f"dns:///{address}"


def open_channel(address: str, default_timeout: float) -> ContextChannel:
    channel = grpc.aio.insecure_channel(
        channel_target(address),
        options=[
            ("grpc.service_config", ROUND_ROBIN_SERVICE_CONFIG),
            # Our service config, not one a DNS TXT record might carry.
            ("grpc.service_config_disable_resolution", 1),
            ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
            # grpcio 1.85 times a keepalive ping out by the HTTP/2 ping
            # timeout (60 s by default), not by keepalive_timeout_ms alone.
            ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
            ("grpc.http2.ping_timeout_ms", KEEPALIVE_TIMEOUT_MS),
            # Reconnect quickly once a restarted peer is back. The minimum
            # backoff is also the timeout of one connection attempt.
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.min_reconnect_backoff_ms", CONNECT_TIMEOUT_MS),
            ("grpc.max_reconnect_backoff_ms", 2_000),
            # A long story is read whole; gRPC's default cap is 4 MB.
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ],
    )
    return ContextChannel(channel, default_timeout)
