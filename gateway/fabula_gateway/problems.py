"""Problem documents (RFC 9457) and the one mapping of gRPC statuses to HTTP.

Every error the gateway answers with is `application/problem+json` with a
stable `type` URI per kind of problem, so clients can branch on `type` rather
than on prose. Details written by our services for callers (domain errors)
are passed on; anything else is replaced with a generic sentence so internal
addresses and stack traces never reach a client.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import grpc
from fabula_common.context import current_request_id
from fabula_common.errors import (
    ErrorDetails,
    ContentBlocked,
    AlreadySubscribed,
    IdempotencyKeyInProgress,
    IdempotencyKeyReused,
    NoSubscription,
    PaymentProviderUnavailable,
    PaymentsNotConfigured,
    QuotaExceeded,
    RateLimited,
    StoryBusy,
    ConversationBusy,
    StoryComplete,
    TooBusy,
    TooManyAttempts,
    UpstreamError,
    WebhookSignatureInvalid,
    error_details,
    BadSignature,
    FileTooLarge,
    PhotoNotReady,
    UnsupportedMediaType,
    UploadMissing,
    UrlExpired,
)
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

PROBLEM_MEDIA_TYPE = "application/problem+json"
# ErrorInfo reasons of generation's JobsService (see protos/fabula/generation/v1/jobs.proto).
TOO_MANY_RUNNING_JOBS_REASON = "too-many-running-jobs"
JOB_BUDGET_EXCEEDED_REASON = "job-budget-exceeded"
PROBLEM_TYPE_BASE = "https://fabula.dev/problems/"
# Seconds a client should wait before retrying a 503/429 when the backend did
# not say (its RetryInfo wins).
RETRY_AFTER_SECONDS = 2
WWW_AUTHENTICATE = 'Bearer realm="fabula"'


@dataclass(frozen=True)
class ProblemType:
    """One kind of problem: its stable URI, short title and HTTP status."""

    slug: str
    title: str
    status: int
    default_detail: str

    @property
    def uri(self) -> str:
        # RFC 9457: "about:blank" when the status says all there is to say.
        return PROBLEM_TYPE_BASE + self.slug if self.slug else "about:blank"


BAD_REQUEST = ProblemType("bad-request", "Bad request", 400, "The request could not be understood.")
UNAUTHENTICATED = ProblemType(
    "unauthenticated", "Authentication required", 401, "A valid bearer token is required."
)
FORBIDDEN = ProblemType("forbidden", "Forbidden", 403, "This account may not do this.")
INSUFFICIENT_SCOPE = ProblemType(
    "insufficient-scope",
    "Insufficient scope",
    403,
    "The API key's scopes do not allow this request.",
)
QUOTA_EXCEEDED = ProblemType(
    "quota-exceeded", "Quota exceeded", 402, "The plan's quota for this period is used up."
)
NOT_FOUND = ProblemType("not-found", "Not found", 404, "The resource was not found.")
METHOD_NOT_ALLOWED = ProblemType(
    "method-not-allowed", "Method not allowed", 405, "The method is not allowed on this resource."
)
ALREADY_EXISTS = ProblemType(
    "already-exists", "Already exists", 409, "The resource already exists."
)
CONFLICT = ProblemType(
    "conflict", "Conflict", 409, "The request conflicts with the current state of the resource."
)
STORY_BUSY = ProblemType(
    "story-busy",
    "Story busy",
    409,
    "Another segment of this story is being written; retry when it is done.",
)
CONVERSATION_BUSY = ProblemType(
    "conversation-busy",
    "Conversation busy",
    409,
    "The council is answering another message of this conversation; retry when it is done.",
)
IDEMPOTENCY_KEY_IN_PROGRESS = ProblemType(
    "idempotency-key-in-progress",
    "Idempotency key in progress",
    409,
    "The first request with this Idempotency-Key is still being processed; retry after "
    "Retry-After seconds to get its answer.",
)
STORY_COMPLETE = ProblemType(
    "story-complete", "Story complete", 409, "The story is complete; it cannot be extended."
)
REQUEST_TIMEOUT = ProblemType(
    "request-timeout", "Request timeout", 408, "The request was not received in time."
)
CONTENT_TOO_LARGE = ProblemType(
    "content-too-large", "Content too large", 413, "The request body is too large."
)
UNSUPPORTED_MEDIA_TYPE = ProblemType(
    "unsupported-media-type",
    "Unsupported media type",
    415,
    "The request body must be JSON (Content-Type: application/json).",
)
HEADERS_TOO_LARGE = ProblemType(
    "headers-too-large",
    "Request header fields too large",
    431,
    "The request line and headers are too large.",
)
VALIDATION_FAILED = ProblemType(
    "validation-error", "Validation failed", 422, "The request is not valid."
)
IDEMPOTENCY_KEY_REUSED = ProblemType(
    "idempotency-key-reused",
    "Idempotency key reused",
    422,
    "The Idempotency-Key was already used with a different request.",
)
CONTENT_BLOCKED = ProblemType(
    "content-blocked",
    "Content blocked",
    422,
    "The moderation check of this account's child-safe generation refused the content.",
)
RATE_LIMITED = ProblemType(
    "rate-limited", "Too many requests", 429, "Too many requests; retry later."
)
TOO_MANY_ATTEMPTS = ProblemType(
    "too-many-attempts",
    "Too many attempts",
    429,
    "Too many failed attempts; retry after Retry-After seconds.",
)
INTERNAL_ERROR = ProblemType(
    "internal-error", "Internal server error", 500, "An unexpected error occurred."
)
SERVICE_UNAVAILABLE = ProblemType(
    "service-unavailable",
    "Service unavailable",
    503,
    "A backend service is temporarily unavailable; retry later.",
)
# RFC 9110: 503 is the server's own overload (429 would blame this client).
TOO_BUSY = ProblemType(
    "too-busy",
    "Too busy",
    503,
    "The service is handling too many requests of this kind; retry later.",
)
MODEL_UNAVAILABLE = ProblemType(
    "model-unavailable",
    "Model provider unavailable",
    503,
    "The model provider could not write this segment; retry later.",
)
PAYMENTS_NOT_CONFIGURED = ProblemType(
    "payments-not-configured",
    "Payments not configured",
    503,
    "Payments are not configured on this server.",
)
PAYMENT_PROVIDER_UNAVAILABLE = ProblemType(
    "payment-provider-unavailable",
    "Payment provider unavailable",
    503,
    "The payment provider could not be reached; retry later.",
)
WEBHOOK_SIGNATURE_INVALID = ProblemType(
    "webhook-signature-invalid",
    "Webhook signature invalid",
    400,
    "The webhook's signature does not verify.",
)
ALREADY_SUBSCRIBED = ProblemType(
    "already-subscribed",
    "Already subscribed",
    409,
    "A subscription is live; change or cancel it in the customer portal.",
)
NO_SUBSCRIPTION = ProblemType(
    "no-subscription", "No subscription", 409, "There is no live subscription."
)
TOO_MANY_RUNNING_JOBS = ProblemType(
    "too-many-running-jobs",
    "Too many running jobs",
    409,
    "The plan's number of queued and running jobs is reached; submit when one has ended.",
)
JOB_BUDGET_EXCEEDED = ProblemType(
    "job-budget-exceeded",
    "Job budget exceeded",
    402,
    "The job would cost more than its reserved estimate.",
)
NOT_READY = ProblemType("not-ready", "Not ready", 503, "No backend service is serving.")
# Files (media): what the upload limits refuse, and the signed transfer links.
FILE_TYPE_NOT_ALLOWED = ProblemType(
    "file-type-not-allowed",
    "File type not allowed",
    422,
    "This type of file is not accepted.",
)
FILE_TOO_LARGE = ProblemType(
    "file-too-large", "File too large", 422, "The file is larger than the limit."
)
UPLOAD_CONTENT_TYPE_MISMATCH = ProblemType(
    "upload-content-type-mismatch",
    "Content-Type differs from the declared one",
    415,
    "Send the file with the Content-Type declared when it was created.",
)
UPLOAD_MISSING = ProblemType(
    "upload-missing", "Upload missing", 409, "The file's bytes have not been uploaded yet."
)
PHOTO_NOT_READY = ProblemType(
    "photo-not-ready", "Photo not ready", 409, "The photo is not processed."
)
BAD_SIGNATURE = ProblemType(
    "bad-signature", "Link not valid", 403, "The link is not one this API signed."
)
URL_EXPIRED = ProblemType("url-expired", "Link expired", 403, "The link has expired.")

_BY_STATUS = {
    kind.status: kind
    for kind in (
        BAD_REQUEST,
        UNAUTHENTICATED,
        QUOTA_EXCEEDED,
        NOT_FOUND,
        METHOD_NOT_ALLOWED,
        CONFLICT,
        REQUEST_TIMEOUT,
        CONTENT_TOO_LARGE,
        UNSUPPORTED_MEDIA_TYPE,
        HEADERS_TOO_LARGE,
        VALIDATION_FAILED,
        RATE_LIMITED,
        INTERNAL_ERROR,
        SERVICE_UNAVAILABLE,
    )
}


def problem_type_for_status(status: int) -> ProblemType:
    """Our problem type for an HTTP status; `about:blank` semantics otherwise."""
    kind = _BY_STATUS.get(status)
    if kind is not None:
        return kind
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return ProblemType("", phrase, status, phrase + ".")


class FieldError(BaseModel):
    """One invalid part of the request. Exactly one of pointer/parameter/header is set."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "pointer": "#/password",
                    "detail": "String should have at least 8 characters",
                    "code": "string_too_short",
                }
            ]
        }
    )

    detail: str = Field(description="What is wrong, in English.")
    code: str = Field(description="Machine-readable kind of error, e.g. `string_too_short`.")
    pointer: str | None = Field(None, description="JSON Pointer (RFC 6901) into the request body.")
    parameter: str | None = Field(None, description="Name of the path or query parameter.")
    header: str | None = Field(None, description="Name of the request header.")


class Problem(BaseModel):
    """An error, as an RFC 9457 problem document."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "https://fabula.dev/problems/quota-exceeded",
                    "title": "Quota exceeded",
                    "status": 402,
                    "detail": "monthly generation limit reached",
                    "request_id": "3f9c0e6a5b3d4f7e9a1b2c3d4e5f6a7b",
                }
            ]
        },
    )

    type: str = Field(description="Stable URI naming the kind of problem; branch on this.")
    title: str = Field(description="Short summary of the kind of problem.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="Explanation specific to this occurrence.")
    request_id: str | None = Field(
        None,
        description="Id of the request (also in the X-Request-ID header); quote it in reports.",
    )
    errors: list[FieldError] | None = Field(
        None, description="The invalid parts of the request (validation problems only)."
    )


class QuotaProblem(Problem):
    """A quota refusal (402): what an app needs to tell its user."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "https://fabula.dev/problems/quota-exceeded",
                    "title": "Quota exceeded",
                    "status": 402,
                    "detail": "monthly generation quota exceeded: the free plan allows 5 "
                    "generations per month (5 used, 0 in progress)",
                    "request_id": "3f9c0e6a5b3d4f7e9a1b2c3d4e5f6a7b",
                    "plan": "free",
                    "quota": "generations",
                    "limit": 5,
                    "resets_at": "2025-02-01T00:00:00Z",
                }
            ]
        },
    )

    plan: str | None = Field(None, description="The user's plan.")
    quota: str | None = Field(
        None, description="The limit that was reached: `generations` or `cost`."
    )
    limit: int | str | None = Field(
        None,
        description="That limit for the period: a number of generations, or US dollars as "
        "a decimal string (as in /v1/usage).",
    )
    resets_at: dt.datetime | None = Field(
        None, description="When the period ends and the quota is renewed."
    )


def quota_facts(metadata: dict[str, str]) -> dict[str, Any]:
    """The members of a quota problem from billing's ErrorInfo metadata; a
    fact missing or unreadable (e.g. from an older billing) is left out."""
    facts: dict[str, Any] = {}
    if metadata.get("plan"):
        facts["plan"] = metadata["plan"]
    quota = metadata.get("quota")
    if quota:
        facts["quota"] = quota
    limit = metadata.get("limit", "")
    # A count of generations is a number; dollars stay a decimal string.
    if quota == "generations" and limit.isdigit():
        facts["limit"] = int(limit)
    elif quota == "cost" and limit:
        facts["limit"] = limit
    try:
        facts["resets_at"] = dt.datetime.fromisoformat(metadata["resets_at"])
    except (KeyError, ValueError):
        pass
    return facts


class ProblemError(Exception):
    """Raised anywhere in a request to answer with a problem document."""

    def __init__(
        self,
        kind: ProblemType,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        errors: list[FieldError] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> None:
        self.kind = kind
        self.detail = detail or kind.default_detail
        self.headers = headers or {}
        self.errors = errors
        # Extension members added to the document (RFC 9457 section 3.2).
        self.extensions = extensions or {}
        super().__init__(self.detail)

    @property
    def status(self) -> int:
        return self.kind.status

    @property
    def type(self) -> str:
        return self.kind.uri

    def to_problem(self) -> Problem:
        return Problem(
            type=self.type,
            title=self.kind.title,
            status=self.kind.status,
            detail=self.detail,
            request_id=current_request_id(),
            errors=self.errors,
            **self.extensions,
        )

    def to_response(self) -> JSONResponse:
        return JSONResponse(
            self.to_problem().model_dump(mode="json", exclude_none=True),
            status_code=self.kind.status,
            headers=self.headers,
            media_type=PROBLEM_MEDIA_TYPE,
        )


def unauthenticated(detail: str, *, invalid_token: bool) -> ProblemError:
    """401 with the WWW-Authenticate challenge RFC 6750 asks for."""
    challenge = WWW_AUTHENTICATE
    if invalid_token:
        description = detail.replace('"', "'").replace("\\", "/")
        challenge += f', error="invalid_token", error_description="{description}"'
    return ProblemError(UNAUTHENTICATED, detail, headers={"WWW-Authenticate": challenge})


def insufficient_scope(scope: str) -> ProblemError:
    """403 with the challenge RFC 6750 asks for when a token lacks a scope."""
    challenge = f'{WWW_AUTHENTICATE}, error="insufficient_scope", scope="{scope}"'
    return ProblemError(
        INSUFFICIENT_SCOPE,
        f"This API key lacks the '{scope}' scope; only reading (GET) is allowed with it.",
        headers={"WWW-Authenticate": challenge},
    )


def retry_after(seconds: float | None) -> dict[str, str]:
    """The Retry-After header: whole seconds, at least 1 (RFC 9110 section 10.2.3)."""
    wait = RETRY_AFTER_SECONDS if seconds is None else max(1, math.ceil(seconds))
    return {"Retry-After": str(wait)}


def problem_for_status(
    code: grpc.StatusCode, details: str | None, error: ErrorDetails
) -> ProblemError:
    """THE mapping of a backend's gRPC status (and its ErrorInfo reason and
    RetryInfo, when one of our services wrote it) to the HTTP problem a client sees."""
    # Domain errors of our services carry messages written for callers.
    passed_on = details or None
    reason = error.reason
    match code:
        case grpc.StatusCode.INVALID_ARGUMENT if reason == IdempotencyKeyReused.reason:
            return ProblemError(IDEMPOTENCY_KEY_REUSED, passed_on)
        case grpc.StatusCode.INVALID_ARGUMENT if reason == WebhookSignatureInvalid.reason:
            return ProblemError(WEBHOOK_SIGNATURE_INVALID, passed_on)
        case grpc.StatusCode.INVALID_ARGUMENT if reason == ContentBlocked.reason:
            # Which part was refused (the direction, or the story written for it).
            return ProblemError(
                CONTENT_BLOCKED,
                passed_on,
                extensions={"part": error.metadata.get("part", "")},
            )
        case grpc.StatusCode.INVALID_ARGUMENT if reason == UnsupportedMediaType.reason:
            # A transfer's Content-Type names the mismatch; a declared type the limits.
            kind = (
                UPLOAD_CONTENT_TYPE_MISMATCH
                if error.metadata.get("upload") == "true"
                else FILE_TYPE_NOT_ALLOWED
            )
            return ProblemError(kind, passed_on)
        case grpc.StatusCode.INVALID_ARGUMENT if reason == FileTooLarge.reason:
            return ProblemError(FILE_TOO_LARGE, passed_on)
        case grpc.StatusCode.INVALID_ARGUMENT:
            return ProblemError(VALIDATION_FAILED, passed_on)
        case grpc.StatusCode.NOT_FOUND:
            return ProblemError(NOT_FOUND, passed_on)
        case grpc.StatusCode.PERMISSION_DENIED if reason == BadSignature.reason:
            return ProblemError(BAD_SIGNATURE, passed_on)
        case grpc.StatusCode.PERMISSION_DENIED if reason == UrlExpired.reason:
            return ProblemError(URL_EXPIRED, passed_on)
        case grpc.StatusCode.PERMISSION_DENIED:
            # Someone else's resource must be indistinguishable from none at all.
            return ProblemError(NOT_FOUND)
        case grpc.StatusCode.ALREADY_EXISTS if reason == AlreadySubscribed.reason:
            return ProblemError(ALREADY_SUBSCRIBED, passed_on)
        case grpc.StatusCode.ALREADY_EXISTS:
            return ProblemError(ALREADY_EXISTS, passed_on)
        case grpc.StatusCode.FAILED_PRECONDITION if reason == StoryBusy.reason:
            return ProblemError(STORY_BUSY, passed_on, headers=retry_after(error.retry_after))
        case grpc.StatusCode.FAILED_PRECONDITION if reason == ConversationBusy.reason:
            return ProblemError(
                CONVERSATION_BUSY, passed_on, headers=retry_after(error.retry_after)
            )
        case grpc.StatusCode.FAILED_PRECONDITION if reason == IdempotencyKeyInProgress.reason:
            return ProblemError(
                IDEMPOTENCY_KEY_IN_PROGRESS, passed_on, headers=retry_after(error.retry_after)
            )
        case grpc.StatusCode.FAILED_PRECONDITION if reason == StoryComplete.reason:
            return ProblemError(STORY_COMPLETE, passed_on)
        case grpc.StatusCode.FAILED_PRECONDITION if reason == TOO_MANY_RUNNING_JOBS_REASON:
            return ProblemError(TOO_MANY_RUNNING_JOBS, passed_on)
        case _ if reason == JOB_BUDGET_EXCEEDED_REASON:
            return ProblemError(JOB_BUDGET_EXCEEDED, passed_on)
        case grpc.StatusCode.FAILED_PRECONDITION if reason == UploadMissing.reason:
            return ProblemError(UPLOAD_MISSING, passed_on)
        case grpc.StatusCode.FAILED_PRECONDITION if reason == PhotoNotReady.reason:
            return ProblemError(PHOTO_NOT_READY, passed_on)
        case grpc.StatusCode.FAILED_PRECONDITION if reason == NoSubscription.reason:
            return ProblemError(NO_SUBSCRIPTION, passed_on)
        case grpc.StatusCode.FAILED_PRECONDITION:
            return ProblemError(CONFLICT, passed_on)
        case grpc.StatusCode.ABORTED:
            # Raised by concurrency control (a serialization failure, a
            # deadlock), not written for callers: the same request may succeed now.
            return ProblemError(
                CONFLICT,
                "The request conflicted with a concurrent change; retry it.",
                headers=retry_after(error.retry_after),
            )
        case grpc.StatusCode.UNAUTHENTICATED:
            return unauthenticated(passed_on or UNAUTHENTICATED.default_detail, invalid_token=False)
        case grpc.StatusCode.RESOURCE_EXHAUSTED if reason == TooManyAttempts.reason:
            # Failed logins of an account or address: refused until Retry-After.
            return ProblemError(
                TOO_MANY_ATTEMPTS, passed_on, headers=retry_after(error.retry_after)
            )
        case grpc.StatusCode.RESOURCE_EXHAUSTED if reason == RateLimited.reason:
            # This user asked too often (e.g. story suggestions): refused until Retry-After.
            return ProblemError(RATE_LIMITED, passed_on, headers=retry_after(error.retry_after))
        case grpc.StatusCode.RESOURCE_EXHAUSTED if reason == QuotaExceeded.reason:
            return ProblemError(
                QUOTA_EXCEEDED, passed_on, extensions=quota_facts(error.metadata)
            )
        case grpc.StatusCode.UNAVAILABLE if reason == TooBusy.reason:
            # Refused at once by a service's admission control (e.g. a login storm).
            return ProblemError(TOO_BUSY, passed_on, headers=retry_after(error.retry_after))
        case grpc.StatusCode.UNAVAILABLE if reason == PaymentsNotConfigured.reason:
            # An operator's setting, not a passing fault: no Retry-After.
            return ProblemError(PAYMENTS_NOT_CONFIGURED, passed_on)
        case grpc.StatusCode.UNAVAILABLE if reason == PaymentProviderUnavailable.reason:
            return ProblemError(
                PAYMENT_PROVIDER_UNAVAILABLE, passed_on, headers=retry_after(error.retry_after)
            )
        case grpc.StatusCode.UNAVAILABLE if reason in UpstreamError.reasons:
            # Written by the generation service for callers (e.g. rate-limiting).
            return ProblemError(
                MODEL_UNAVAILABLE, passed_on, headers=retry_after(error.retry_after)
            )
        case grpc.StatusCode.UNAVAILABLE | grpc.StatusCode.DEADLINE_EXCEEDED:
            return ProblemError(SERVICE_UNAVAILABLE, headers=retry_after(error.retry_after))
        case _:
            # Includes gRPC's own RESOURCE_EXHAUSTED (e.g. a message too large
            # for a channel): our limit, not the client's quota nor a rate.
            return ProblemError(INTERNAL_ERROR)


def problem_for_rpc_error(err: grpc.aio.AioRpcError) -> ProblemError:
    return problem_for_status(err.code(), err.details(), error_details(err))
