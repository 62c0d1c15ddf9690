"""Outbound gRPC channels: every call carries the request id and a deadline.

The deadline is the caller's own timeout, else the configured default, and
never later than the deadline of the incoming call being served.
"""

from __future__ import annotations

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


def open_channel(address: str, default_timeout: float) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(
        address,
        interceptors=[_UnaryUnary(default_timeout), _UnaryStream(default_timeout)],
        options=[
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 10_000),
            # Reconnect quickly once a restarted peer is back.
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 2_000),
            # A long story is read whole; gRPC's default cap is 4 MB.
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ],
    )
