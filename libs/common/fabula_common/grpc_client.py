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

import grpc

from fabula_common.context import current_request_id, remaining_time
from fabula_common.messaging.headers import REQUEST_ID_HEADER


def _with_context(details: grpc.aio.ClientCallDetails, default_timeout: float):
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    request_id = current_request_id()
    if request_id and REQUEST_ID_HEADER not in metadata:
        metadata.add(REQUEST_ID_HEADER, request_id)
    timeout = details.timeout if details.timeout is not None else default_timeout
    return grpc.aio.ClientCallDetails(
        method=details.method,
        timeout=remaining_time(timeout),
        metadata=metadata,
        credentials=details.credentials,
        wait_for_ready=details.wait_for_ready,
    )


class _UnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, default_timeout: float) -> None:
        self.default_timeout = default_timeout

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        return await continuation(_with_context(client_call_details, self.default_timeout), request)


class _UnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, default_timeout: float) -> None:
        self.default_timeout = default_timeout

    async def intercept_unary_stream(self, continuation, client_call_details, request):
        return await continuation(_with_context(client_call_details, self.default_timeout), request)


# Every address the name resolves to gets a connection; calls rotate over the
# ready ones. With none ready the channel fails calls at once (UNAVAILABLE)
# rather than queueing them.
ROUND_ROBIN_SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})

# How long one connection attempt may take, TCP and HTTP/2 handshake together.
# gRPC's default is 20 s: a peer that accepts TCP but never answers would hold
# every call made meanwhile until its own deadline.
CONNECT_TIMEOUT_MS = 1_000


_RESOLVER_SCHEMES = ("dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:", "vsock:")


def channel_target(address: str) -> str:
    """`host:port` as a DNS target (IP literals, loopback included, resolve to
    themselves); an address that already names a resolver (`dns:///...`,
    `ipv4:...`, `unix:...`) is kept as it is."""
    if address.startswith(_RESOLVER_SCHEMES):
        return address
    return f"dns:///{address}"


def open_channel(address: str, default_timeout: float) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(
        channel_target(address),
        interceptors=[_UnaryUnary(default_timeout), _UnaryStream(default_timeout)],
        options=[
            ("grpc.service_config", ROUND_ROBIN_SERVICE_CONFIG),
            # Our service config, not one a DNS TXT record might carry.
            ("grpc.service_config_disable_resolution", 1),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 10_000),
            # Reconnect quickly once a restarted peer is back. The minimum
            # backoff is also the timeout of one connection attempt.
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.min_reconnect_backoff_ms", CONNECT_TIMEOUT_MS),
            ("grpc.max_reconnect_backoff_ms", 2_000),
            # A long story is read whole; gRPC's default cap is 4 MB.
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ],
    )
