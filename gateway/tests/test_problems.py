"""The one mapping of backend gRPC statuses to HTTP problems."""

from __future__ import annotations

import grpc
import pytest
from fabula_common.errors import ERROR_REASON_KEY
from fabula_gateway.problems import problem_for_rpc_error

BASE = "https://fabula.dev/problems/"


def rpc_error(
    code: grpc.StatusCode, details: str = "", reason: str | None = None
) -> grpc.aio.AioRpcError:
    trailers = grpc.aio.Metadata(*([(ERROR_REASON_KEY, reason)] if reason else []))
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailers, details=details)


@pytest.mark.parametrize(
    ("code", "reason", "status", "problem_type"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, "invalid-argument", 422, "validation-error"),
        (grpc.StatusCode.NOT_FOUND, "not-found", 404, "not-found"),
        (grpc.StatusCode.ALREADY_EXISTS, "already-exists", 409, "already-exists"),
        (grpc.StatusCode.FAILED_PRECONDITION, "conflict", 409, "conflict"),
        (grpc.StatusCode.ABORTED, None, 409, "conflict"),
        (grpc.StatusCode.UNAUTHENTICATED, "unauthenticated", 401, "unauthenticated"),
        (grpc.StatusCode.PERMISSION_DENIED, None, 404, "not-found"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "quota-exceeded", 402, "quota-exceeded"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, None, 429, "rate-limited"),
        (grpc.StatusCode.UNAVAILABLE, "unavailable", 503, "service-unavailable"),
        (grpc.StatusCode.UNAVAILABLE, None, 503, "service-unavailable"),
        (grpc.StatusCode.UNAVAILABLE, "upstream-error", 503, "model-unavailable"),
        (grpc.StatusCode.UNAVAILABLE, "upstream-rate-limited", 503, "model-unavailable"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, None, 503, "service-unavailable"),
        (grpc.StatusCode.INTERNAL, "internal", 500, "internal-error"),
        (grpc.StatusCode.UNKNOWN, None, 500, "internal-error"),
        (grpc.StatusCode.UNIMPLEMENTED, None, 500, "internal-error"),
        (grpc.StatusCode.CANCELLED, None, 500, "internal-error"),
        (grpc.StatusCode.DATA_LOSS, None, 500, "internal-error"),
        (grpc.StatusCode.OUT_OF_RANGE, None, 500, "internal-error"),
    ],
)
def test_status_maps_to_problem(code, reason, status, problem_type):
    problem = problem_for_rpc_error(rpc_error(code, "backend says so", reason))

    assert problem.status == status
    assert problem.type == BASE + problem_type


def test_quota_problem_is_titled_and_keeps_the_services_message():
    problem = problem_for_rpc_error(
        rpc_error(
            grpc.StatusCode.RESOURCE_EXHAUSTED, "monthly limit of 50 reached", "quota-exceeded"
        )
    ).to_problem()

    assert problem.title == "Quota exceeded"
    assert problem.detail == "monthly limit of 50 reached"


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ],
)
def test_details_not_written_for_callers_are_not_passed_on(code):
    secret = "failed to connect to all addresses; last error: 10.0.3.7:50052 psycopg trace"

    problem = problem_for_rpc_error(rpc_error(code, secret)).to_problem()

    assert "10.0.3.7" not in problem.detail
    assert problem.detail


def test_domain_details_are_passed_on():
    problem = problem_for_rpc_error(
        rpc_error(grpc.StatusCode.FAILED_PRECONDITION, "the story is complete", "conflict")
    ).to_problem()

    assert problem.detail == "the story is complete"


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED])
def test_unavailable_tells_when_to_retry(code):
    assert int(problem_for_rpc_error(rpc_error(code)).headers["Retry-After"]) > 0


def test_unauthenticated_carries_a_bearer_challenge():
    problem = problem_for_rpc_error(rpc_error(grpc.StatusCode.UNAUTHENTICATED, "wrong password"))

    assert problem.headers["WWW-Authenticate"].startswith("Bearer")
