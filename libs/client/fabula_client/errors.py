"""problem+json answers (RFC 9457) as typed exceptions.

Every error the API gives is a problem document with a stable `type` URI; the
exception class is chosen by the last part of that URI (its slug) and, for
types this client does not know yet, by the HTTP status, so a newer server
never breaks an older client.
"""

from __future__ import annotations

from typing import Any

import httpx


class FabulaError(Exception):
    """An answer of the API that is not a success, or no answer at all.

    `status`, `type`, `title` and `detail` come from the problem document;
    `problem` is the whole document (extensions such as `plan` included).
    """

    def __init__(
        self,
        status: int | None,
        type: str = "about:blank",
        title: str = "",
        detail: str = "",
        *,
        problem: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.problem = problem or {}
        self.retry_after = retry_after
        super().__init__(self.line())

    @property
    def slug(self) -> str:
        """The problem type's last part, e.g. `story-busy`."""
        return self.type.rstrip("/").rsplit("/", 1)[-1]

    @property
    def request_id(self) -> str | None:
        return self.problem.get("request_id")

    def line(self) -> str:
        """One readable line: the title and the detail."""
        if self.detail and self.detail != self.title:
            return f"{self.title}: {self.detail}" if self.title else self.detail
        return self.title or f"HTTP {self.status}"


class InvalidRequest(FabulaError):
    """400 or 422: the request is not valid (`errors` lists the fields)."""

    @property
    def errors(self) -> list[dict[str, Any]]:
        return self.problem.get("errors") or []


class AuthenticationError(FabulaError):
    """401: no valid credentials (log in again)."""


class PermissionDenied(FabulaError):
    """403: this account or key may not do this."""


class NotFound(FabulaError):
    """404: no such resource (or another user's)."""


class QuotaExceeded(FabulaError):
    """402: the plan's limit is reached until `resets_at`."""

    @property
    def plan(self) -> str | None:
        return self.problem.get("plan")

    @property
    def quota(self) -> str | None:
        return self.problem.get("quota")

    @property
    def limit(self) -> int | str | None:
        return self.problem.get("limit")

    @property
    def resets_at(self) -> str | None:
        return self.problem.get("resets_at")


class Conflict(FabulaError):
    """409: the request conflicts with the resource's state."""


class StoryBusy(Conflict):
    """409: another segment of the story is being written; retry after `retry_after`."""


class ConversationBusy(Conflict):
    """409: the council is answering another message of the conversation."""


class StoryComplete(Conflict):
    """409: the story is complete and cannot be extended."""


class IdempotencyKeyInProgress(Conflict):
    """409: the first request with this Idempotency-Key is still running."""


class RateLimited(FabulaError):
    """429: too many requests; retry after `retry_after`."""


class ServerError(FabulaError):
    """500 and other 5xx answers that are not 503."""


class ServiceUnavailable(FabulaError):
    """503: a service is down or too busy; retry after `retry_after`."""


class APIConnectionError(FabulaError):
    """No answer: the API could not be reached, or the connection broke."""

    def __init__(self, message: str) -> None:
        super().__init__(None, title="Cannot reach the API", detail=message)


_BY_SLUG: dict[str, type[FabulaError]] = {
    "quota-exceeded": QuotaExceeded,
    "job-budget-exceeded": QuotaExceeded,
    "too-many-running-jobs": QuotaExceeded,
    "story-busy": StoryBusy,
    "conversation-busy": ConversationBusy,
    "story-complete": StoryComplete,
    "idempotency-key-in-progress": IdempotencyKeyInProgress,
    "rate-limited": RateLimited,
    "too-many-attempts": RateLimited,
}
_BY_STATUS: dict[int, type[FabulaError]] = {
    400: InvalidRequest,
    401: AuthenticationError,
    402: QuotaExceeded,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: InvalidRequest,
    415: InvalidRequest,
    422: InvalidRequest,
    429: RateLimited,
    503: ServiceUnavailable,
}


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After in seconds (only the delta-seconds form is sent by the API)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def error_from_problem(
    status: int | None, problem: dict[str, Any], retry_after: float | None = None
) -> FabulaError:
    """The exception for a problem document (also one sent as an SSE `error` event)."""
    status = status if status is not None else problem.get("status")
    type_uri = str(problem.get("type") or "about:blank")
    slug = type_uri.rstrip("/").rsplit("/", 1)[-1]
    cls = _BY_SLUG.get(slug) or _BY_STATUS.get(status or 0)
    if cls is None:
        cls = ServerError if (status or 0) >= 500 else FabulaError
    if retry_after is None and problem.get("retry_after") is not None:
        retry_after = float(problem["retry_after"])
    return cls(
        status,
        type_uri,
        str(problem.get("title") or ""),
        str(problem.get("detail") or ""),
        problem=problem,
        retry_after=retry_after,
    )


def error_from_response(response: httpx.Response) -> FabulaError:
    """The exception for an answer that is not a success (its body already read)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {"title": response.reason_phrase, "detail": response.text[:200]}
    return error_from_problem(
        response.status_code, body, retry_after_seconds(response.headers.get("retry-after"))
    )
