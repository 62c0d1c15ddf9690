"""A peer's answer becomes the domain error it stands for, so it travels on
unchanged; gRPC's own failures never pose as domain errors."""

from __future__ import annotations

import grpc
import pytest
from fabula_common.errors import (
    ERROR_REASON_KEY,
    FabulaError,
    NotFound,
    QuotaExceeded,
    Unavailable,
    UpstreamError,
    from_rpc_error,
)


def rpc_error(code: grpc.StatusCode, details: str, reason: str | None = None) -> grpc.aio.AioRpcError:
    trailers = grpc.aio.Metadata((ERROR_REASON_KEY, reason)) if reason else grpc.aio.Metadata()
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailers, details)


def test_a_quota_refusal_stays_a_quota_refusal():
    error = from_rpc_error(rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "quota spent", "quota-exceeded"))
    assert isinstance(error, QuotaExceeded) and error.message == "quota spent"


def test_a_model_providers_rate_limiting_keeps_its_reason_and_message():
    error = from_rpc_error(
        rpc_error(grpc.StatusCode.UNAVAILABLE, "provider is rate-limiting", UpstreamError.RATE_LIMITED)
    )
    assert isinstance(error, UpstreamError)
    assert (error.reason, error.message) == (UpstreamError.RATE_LIMITED, "provider is rate-limiting")


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED])
def test_a_dead_or_slow_peer_is_unavailable(code):
    assert isinstance(from_rpc_error(rpc_error(code, "connection refused")), Unavailable)


def test_domain_errors_keep_their_code():
    error = from_rpc_error(rpc_error(grpc.StatusCode.NOT_FOUND, "story not found", "not-found"))
    assert isinstance(error, NotFound) and error.code is grpc.StatusCode.NOT_FOUND


def test_grpcs_own_resource_exhausted_is_not_a_quota_refusal():
    error = from_rpc_error(rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "Received message larger than max"))
    assert type(error) is FabulaError and error.code is grpc.StatusCode.INTERNAL
