"""Domain errors and their one mapping to gRPC's standard rich status.

Domain code raises these; the server interceptor sends each as its status code
plus a `google.rpc.Status` (the `grpc-status-details-bin` trailer) holding an
`ErrorInfo` (our kebab-case `reason`, domain `fabula.dev`, metadata such as the
story id) and, when waiting and retrying helps, a `RetryInfo`. Peers read it
back with `error_details` / `from_rpc_error`; the gateway turns it into HTTP
problem documents (fabula_gateway.problems).

Reasons are kebab-case, the same words as the gateway's problem types
(`story-busy` → `https://fabula.dev/problems/story-busy`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

# ErrorInfo.domain of every error our services raise: a status without it was
# not written by us (e.g. gRPC's own "message too large").
ERROR_DOMAIN = "fabula.dev"
# Seconds a caller should wait before retrying what a dependency refused for now.
DEFAULT_RETRY_AFTER_SECONDS = 2.0


class FabulaError(Exception):
    """Base of errors a caller is meant to see.

    Subclasses declare `code`, `reason` and, when retrying later can succeed,
    `retry_after` (seconds; None means retrying the same call cannot help).
    """

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    reason: str = "internal"
    retry_after: float | None = None

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        retry_after: float | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        if retry_after is not None:
            self.retry_after = retry_after
        # ErrorInfo.metadata: facts a program may act on (e.g. which story).
        self.metadata = dict(metadata or {})

    def to_status(self) -> grpc.Status:
        """This error as the status a server aborts with (code, message and the
        rich status trailer)."""
        info = error_details_pb2.ErrorInfo(
            reason=self.reason, domain=ERROR_DOMAIN, metadata=self.metadata
        )
        rich = status_pb2.Status(code=self.code.value[0], message=self.message)
        rich.details.add().Pack(info)
        if self.retry_after is not None:
            retry = error_details_pb2.RetryInfo()
            retry.retry_delay.FromTimedelta(dt.timedelta(seconds=self.retry_after))
            rich.details.add().Pack(retry)
        return rpc_status.to_status(rich)


class InvalidArgument(FabulaError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "invalid-argument"


class IdempotencyKeyReused(InvalidArgument):
    """An Idempotency-Key came back with a different request than its first."""

    reason = "idempotency-key-reused"


class ContentBlocked(InvalidArgument):
    """A child-safe account's request (a direction, a council question), or
    what the model wrote for it, was refused by the moderation check. metadata
    `part` names which (`direction`, `question`, a job brief's field; `story`,
    `story_en`, `story_de`, `answer`, `review`, `chairman`, `title`,
    `questions`, a job stage); `checker` which check."""

    reason = "content-blocked"

    # What the user asked, as opposed to what a model wrote.
    _ASKED = {
        "direction": "the direction",
        "opening_line": "the opening line",
        "story_title": "the title",
        "story_characters": "the characters",
        "memory": "the story's memory",
        "authors_note": "the author's note",
        "question": "the question",
        **dict.fromkeys(("premise", "characters", "setting", "tone", "world_notes"), "the brief"),
        "instructions": "the revision's instructions",
    }

    def __init__(self, part: str, checker: str, categories: list[str] | None = None) -> None:
        what = self._ASKED.get(part, "what was written for it")
        super().__init__(
            f"{what} is not suitable for a young writer's account",
            metadata={
                "part": part,
                "checker": checker,
                "categories": ",".join(categories or ()),
            },
        )


class NotFound(FabulaError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "not-found"


class AlreadyExists(FabulaError):
    code = grpc.StatusCode.ALREADY_EXISTS
    reason = "already-exists"


class Conflict(FabulaError):
    """The resource's state forbids the operation."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "conflict"


class StoryBusy(Conflict):
    """Another segment of the story is being written: retry when it is done."""

    reason = "story-busy"
    retry_after = 1.0


class ConversationBusy(Conflict):
    """The council is answering another message of the conversation: retry
    when it is done."""

    reason = "conversation-busy"
    retry_after = 1.0


class IdempotencyKeyInProgress(Conflict):
    """The first request with this Idempotency-Key is still under way: retry
    after the delay to get its answer."""

    reason = "idempotency-key-in-progress"
    retry_after = 1.0


class StoryComplete(Conflict):
    """The story has its ending: it can never be extended again."""

    reason = "story-complete"


class Unauthenticated(FabulaError):
    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "unauthenticated"


class QuotaExceeded(FabulaError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "quota-exceeded"


class TooManyAttempts(FabulaError):
    """This caller failed too often (e.g. wrong passwords): refused until the
    delay has passed, whatever it sends meanwhile."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "too-many-attempts"


class RateLimited(FabulaError):
    """This caller asked too often in a short time (e.g. story suggestions):
    refused until the delay (its RetryInfo) has passed."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "rate-limited"
    retry_after = 1.0


class Unavailable(FabulaError):
    code = grpc.StatusCode.UNAVAILABLE
    reason = "unavailable"
    retry_after = DEFAULT_RETRY_AFTER_SECONDS


class Aborted(FabulaError):
    """The transaction lost a race with a concurrent one (a serialization
    failure, a deadlock) and was rolled back: the same call may succeed now."""

    code = grpc.StatusCode.ABORTED
    reason = "aborted"
    retry_after = 1.0


class TooBusy(Unavailable):
    """The service refuses work beyond what it can do in time (e.g. password
    hashing during a login storm): retry after the delay."""

    reason = "too-busy"
    retry_after = 1.0


class UpstreamError(FabulaError):
    """A model provider or other outside service failed. Its message is
    written for the end user (the gateway passes it on)."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = "upstream-error"
    retry_after = DEFAULT_RETRY_AFTER_SECONDS
    RATE_LIMITED = "upstream-rate-limited"
    # Every member of a council failed (CouncilService.Deliberate): the
    # message names each member's error.
    MODEL_UNAVAILABLE = "model-unavailable"
    reasons = frozenset({reason, RATE_LIMITED, MODEL_UNAVAILABLE})


class PaymentsNotConfigured(Unavailable):
    """Billing has no Stripe API key (or webhook secret): payments are off,
    and retrying will not help until an operator configures them."""

    reason = "payments-not-configured"
    retry_after = None


class PaymentProviderUnavailable(Unavailable):
    """Stripe could not be reached in time or failed."""

    reason = "payment-provider-unavailable"


class WebhookSignatureInvalid(InvalidArgument):
    """A webhook's signature does not verify: nothing was stored."""

    reason = "webhook-signature-invalid"


class AlreadySubscribed(AlreadyExists):
    reason = "already-subscribed"


class NoSubscription(Conflict):
    """The user has no (live) subscription or no Stripe customer yet."""

    reason = "no-subscription"


class PermissionDenied(FabulaError):
    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "permission-denied"


class UnsupportedMediaType(InvalidArgument):
    """A file whose type the limits refuse (media: an upload's declared type)."""

    reason = "unsupported-media-type"


class FileTooLarge(InvalidArgument):
    """A file larger than the limits allow."""

    reason = "file-too-large"


class UploadMissing(Conflict):
    """An upload said complete whose bytes storage does not hold."""

    reason = "upload-missing"


class PhotoNotReady(Conflict):
    """A photo not processed (yet, or ever: it failed)."""

    reason = "photo-not-ready"


class BadSignature(PermissionDenied):
    """A signed URL that was not signed by us, or altered."""

    reason = "bad-signature"


class UrlExpired(PermissionDenied):
    """A signed URL past its expiry."""

    reason = "url-expired"


_BY_CODE: dict[grpc.StatusCode, type[FabulaError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        Conflict,
        Unauthenticated,
        QuotaExceeded,
        Unavailable,
        Aborted,
        PermissionDenied,
    )
}
_BY_REASON: dict[str, type[FabulaError]] = {
    **{
        cls.reason: cls
        for cls in (
            *_BY_CODE.values(),
            StoryBusy,
            ConversationBusy,
            StoryComplete,
            TooBusy,
            TooManyAttempts,
            RateLimited,
            IdempotencyKeyReused,
            IdempotencyKeyInProgress,
            PaymentsNotConfigured,
            PaymentProviderUnavailable,
            WebhookSignatureInvalid,
            AlreadySubscribed,
            NoSubscription,
            UnsupportedMediaType,
            FileTooLarge,
            UploadMissing,
            PhotoNotReady,
            BadSignature,
            UrlExpired,
        )
    },
    **{reason: UpstreamError for reason in UpstreamError.reasons},
}


@dataclass(frozen=True)
class ErrorDetails:
    """What a status written by one of our services says beyond its code.
    All None/empty for a status that is not ours."""

    reason: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    # Seconds to wait before retrying (RetryInfo); None when retrying cannot help.
    retry_after: float | None = None


def error_details(err: grpc.aio.AioRpcError) -> ErrorDetails:
    """The ErrorInfo and RetryInfo of a failed call's rich status."""
    try:
        rich = rpc_status.from_call(err)
    except ValueError:  # a status proto contradicting the call's own status
        return ErrorDetails()
    if rich is None:
        return ErrorDetails()
    reason, metadata, retry_after = None, {}, None
    for detail in rich.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            if info.domain == ERROR_DOMAIN:
                reason, metadata = info.reason, dict(info.metadata)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            retry_after = retry.retry_delay.ToTimedelta().total_seconds()
    if reason is None:
        return ErrorDetails()
    return ErrorDetails(reason=reason, metadata=metadata, retry_after=retry_after)


def error_reason(err: grpc.aio.AioRpcError) -> str | None:
    """The reason our service gave (ErrorInfo.reason); None for gRPC's own errors."""
    return error_details(err).reason


def from_rpc_error(err: grpc.aio.AioRpcError) -> FabulaError:
    """The domain error a peer service answered with, so it can travel on
    unchanged (a quota refusal from billing stays a quota refusal, a busy story
    stays busy with its retry delay, a model provider's rate-limiting stays that)."""
    code, details = err.code(), error_details(err)
    if details.reason is None:
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return Unavailable(f"a dependency is unavailable: {err.details()}")
        # Not a domain error of ours but gRPC's own (e.g. a message too large):
        # nothing the end user can act on.
        return FabulaError(f"a call to a dependency failed: {code.name} {err.details()}")
    cls = _BY_REASON.get(details.reason)
    if cls is None or cls.code is not code:
        cls = _BY_CODE.get(code, FabulaError)
    error = cls(
        err.details() or code.name,
        reason=details.reason,
        retry_after=details.retry_after,
        metadata=details.metadata,
    )
    if details.retry_after is None:
        error.retry_after = None  # the peer said retrying cannot help
    return error
