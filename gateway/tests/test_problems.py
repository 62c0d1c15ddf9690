"""The one mapping of backend gRPC statuses to HTTP problems."""

from __future__ import annotations

import json

import grpc
import pytest
from fabula_common.errors import (
    Aborted,
    FabulaError,
    IdempotencyKeyInProgress,
    QuotaExceeded,
    StoryBusy,
    StoryComplete,
    TooBusy,
    Unavailable,
    UpstreamError,
)
from fabula_gateway.problems import problem_for_rpc_error

BASE = "https://fabula.dev/problems/"


def answered_with(error: FabulaError) -> grpc.aio.AioRpcError:
    """The failed call the gateway sees when a service raised `error` (its rich status)."""
    status = error.to_status()
    trailers = grpc.aio.Metadata(*status.trailing_metadata)
    return grpc.aio.AioRpcError(status.code, grpc.aio.Metadata(), trailers, status.details)


def rpc_error(
    code: grpc.StatusCode, details: str = "", reason: str | None = None
) -> grpc.aio.AioRpcError:
    """A status with `reason` in its ErrorInfo, as our services send; without
    one, a status as gRPC itself produces (no rich status)."""
    if reason is None:
        return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)
    error = FabulaError(details, reason=reason)
    error.code = code
    return answered_with(error)


@pytest.mark.parametrize(
    ("code", "reason", "status", "problem_type"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, "invalid-argument", 422, "validation-error"),
        (grpc.StatusCode.INVALID_ARGUMENT, "idempotency-key-reused", 422, "idempotency-key-reused"),
        (
            grpc.StatusCode.FAILED_PRECONDITION,
            "idempotency-key-in-progress",
            409,
            "idempotency-key-in-progress",
        ),
        (grpc.StatusCode.NOT_FOUND, "not-found", 404, "not-found"),
        (grpc.StatusCode.ALREADY_EXISTS, "already-exists", 409, "already-exists"),
        (grpc.StatusCode.FAILED_PRECONDITION, "conflict", 409, "conflict"),
        (grpc.StatusCode.FAILED_PRECONDITION, "story-busy", 409, "story-busy"),
        (grpc.StatusCode.FAILED_PRECONDITION, "story-complete", 409, "story-complete"),
        (grpc.StatusCode.ABORTED, None, 409, "conflict"),
        (grpc.StatusCode.UNAUTHENTICATED, "unauthenticated", 401, "unauthenticated"),
        (grpc.StatusCode.PERMISSION_DENIED, None, 404, "not-found"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "quota-exceeded", 402, "quota-exceeded"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "rate-limited", 429, "rate-limited"),
        # gRPC's own (e.g. a message too large): our limit, not the client's quota.
        (grpc.StatusCode.RESOURCE_EXHAUSTED, None, 500, "internal-error"),
        (grpc.StatusCode.UNAVAILABLE, "unavailable", 503, "service-unavailable"),
        (grpc.StatusCode.UNAVAILABLE, None, 503, "service-unavailable"),
        (grpc.StatusCode.UNAVAILABLE, "too-busy", 503, "too-busy"),
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
    problem = problem_for_rpc_error(answered_with(StoryComplete("story is complete"))).to_problem()

    assert problem.detail == "story is complete"


def test_a_busy_story_is_worth_retrying_after_the_delay_the_service_gave():
    problem = problem_for_rpc_error(answered_with(StoryBusy("being written", retry_after=3.2)))

    assert (problem.status, problem.type) == (409, BASE + "story-busy")
    assert problem.detail == "being written"
    # Whole seconds, rounded up: retrying earlier would be refused again.
    assert problem.headers["Retry-After"] == "4"


def test_a_key_still_in_progress_is_worth_retrying_after_the_delay_the_service_gave():
    problem = problem_for_rpc_error(
        answered_with(IdempotencyKeyInProgress("the first request is still being processed"))
    )

    assert (problem.status, problem.type) == (409, BASE + "idempotency-key-in-progress")
    assert problem.kind.title == "Idempotency key in progress"
    assert problem.detail == "the first request is still being processed"
    assert problem.headers["Retry-After"] == "1"


def test_a_complete_story_is_final_no_retry_after():
    problem = problem_for_rpc_error(answered_with(StoryComplete("story is complete")))

    assert (problem.status, problem.type) == (409, BASE + "story-complete")
    assert "Retry-After" not in problem.headers


def test_grpcs_own_resource_exhausted_is_neither_quota_nor_rate_limiting():
    problem = problem_for_rpc_error(
        rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "Received message larger than max")
    )

    assert (problem.status, problem.type) == (500, BASE + "internal-error")
    assert "Retry-After" not in problem.headers
    assert "larger than max" not in problem.detail


def test_only_our_quota_reason_is_a_402():
    problem = problem_for_rpc_error(answered_with(QuotaExceeded("monthly limit of 50 reached")))

    assert (problem.status, problem.type) == (402, BASE + "quota-exceeded")


@pytest.mark.parametrize(
    ("error", "problem_type"),
    [
        (Unavailable("a dependency is unavailable", retry_after=5), "service-unavailable"),
        (UpstreamError("provider is rate-limiting", reason=UpstreamError.RATE_LIMITED,
                       retry_after=5), "model-unavailable"),
    ],
)
def test_unavailable_retry_after_comes_from_the_services_retry_info(error, problem_type):
    problem = problem_for_rpc_error(answered_with(error))

    assert (problem.status, problem.type) == (503, BASE + problem_type)
    assert problem.headers["Retry-After"] == "5"


def test_a_service_too_busy_is_a_503_too_busy_retried_after_its_delay():
    problem = problem_for_rpc_error(answered_with(TooBusy("too many logins at once")))

    assert (problem.status, problem.type) == (503, BASE + "too-busy")
    assert problem.kind.title == "Too busy"
    assert problem.detail == "too many logins at once"
    assert problem.headers["Retry-After"] == "1"


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED])
def test_unavailable_tells_when_to_retry(code):
    assert int(problem_for_rpc_error(rpc_error(code)).headers["Retry-After"]) > 0


def test_unauthenticated_carries_a_bearer_challenge():
    problem = problem_for_rpc_error(rpc_error(grpc.StatusCode.UNAUTHENTICATED, "wrong password"))

    assert problem.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_transaction_that_lost_a_race_is_a_conflict_worth_retrying():
    """A serialization failure or deadlock in a service (fabula_common.db_errors)."""
    problem = problem_for_rpc_error(answered_with(Aborted("could not serialize access")))

    assert (problem.status, problem.type) == (409, BASE + "conflict")
    assert problem.headers["Retry-After"] == "1"
    assert "serialize" not in problem.detail  # not written for callers


def test_a_quota_problem_carries_the_plan_the_limit_and_the_reset_as_members():
    refusal = QuotaExceeded(
        "monthly generation quota exceeded",
        metadata={
            "plan": "pro",
            "quota": "generations",
            "limit": "50",
            "resets_at": "2025-02-01T00:00:00Z",
        },
    )

    body = problem_for_rpc_error(answered_with(refusal)).to_response().body

    problem = json.loads(body)
    assert (problem["status"], problem["plan"], problem["quota"], problem["limit"]) == (
        402,
        "pro",
        "generations",
        50,
    )
    assert problem["resets_at"] == "2025-02-01T00:00:00Z"


def test_unreadable_quota_facts_are_left_out_not_an_error():
    refusal = QuotaExceeded(
        "monthly generation quota exceeded",
        metadata={"plan": "free", "quota": "generations", "limit": "many", "resets_at": "soon"},
    )

    problem = json.loads(problem_for_rpc_error(answered_with(refusal)).to_response().body)

    assert problem["plan"] == "free"
    assert "limit" not in problem and "resets_at" not in problem
