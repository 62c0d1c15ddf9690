"""Domain errors and their one mapping to gRPC status codes.

Domain code raises these; the server interceptor turns them into a status with
a `fabula-error-reason` trailer, and the gateway turns statuses into HTTP
problem documents (fabula_gateway.problems).
"""

from __future__ import annotations

import grpc

ERROR_REASON_KEY = "fabula-error-reason"


class FabulaError(Exception):
    """Base of errors a caller is meant to see."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    reason: str = "internal"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class InvalidArgument(FabulaError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "invalid-argument"


class NotFound(FabulaError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "not-found"


class AlreadyExists(FabulaError):
    code = grpc.StatusCode.ALREADY_EXISTS
    reason = "already-exists"


class Conflict(FabulaError):
    """The resource's state forbids the operation (e.g. continuing a complete story)."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "conflict"


class Unauthenticated(FabulaError):
    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "unauthenticated"


class QuotaExceeded(FabulaError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "quota-exceeded"


class Unavailable(FabulaError):
    code = grpc.StatusCode.UNAVAILABLE
    reason = "unavailable"


class UpstreamError(FabulaError):
    """A model provider or other outside service failed. Its message is
    written for the end user (the gateway passes it on)."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = "upstream-error"
    RATE_LIMITED = "upstream-rate-limited"
    reasons = frozenset({reason, RATE_LIMITED})


_BY_CODE: dict[grpc.StatusCode, type[FabulaError]] = {
    cls.code: cls
    for cls in (InvalidArgument, NotFound, AlreadyExists, Conflict, Unauthenticated, QuotaExceeded)
}


def error_reason(err: grpc.aio.AioRpcError) -> str | None:
    for key, value in err.trailing_metadata() or ():
        if key == ERROR_REASON_KEY:
            return value if isinstance(value, str) else value.decode()
    return None


def from_rpc_error(err: grpc.aio.AioRpcError) -> FabulaError:
    """The domain error a peer service answered with, so it can travel on
    unchanged (a quota refusal from billing stays a quota refusal, a model
    provider's rate-limiting stays that)."""
    code, reason = err.code(), error_reason(err)
    if code is grpc.StatusCode.UNAVAILABLE and reason in UpstreamError.reasons:
        return UpstreamError(err.details() or "the model provider failed", reason=reason)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return Unavailable(f"a dependency is unavailable: {err.details()}")
    if reason is None:
        # Not a domain error of ours but gRPC's own (e.g. a message too large):
        # nothing the end user can act on.
        return FabulaError(f"a call to a dependency failed: {code.name} {err.details()}")
    cls = _BY_CODE.get(code, FabulaError)
    return cls(err.details() or code.name, reason=reason)
