"""What the sync and async clients share: every request is built, authorised,
retried and decoded here, with no I/O.

A request's life is a generator (`Core.exchange`) that yields what it needs
done (`Send` a request, `Read` an error answer's body, `Sleep` before a retry)
and is sent the results; the sync client runs it with httpx.Client and
time.sleep, the async one with httpx.AsyncClient and asyncio.sleep. So retries,
token refresh and error mapping exist once (the "sans-I/O" pattern, as h11
and httpcore are written).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
from httpx_sse import ServerSentEvent

from fabula_client.errors import (
    APIConnectionError,
    FabulaError,
    error_from_problem,
    error_from_response,
)
from fabula_client.models import Tokens

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
USER_AGENT = "fabula-client/0.1"
EVENT_STREAM = "text/event-stream"
# Refresh the access token this long before it expires, so a request never
# carries one that runs out on the way.
REFRESH_MARGIN = dt.timedelta(seconds=30)
# Refused before anything was done: sending the same request again is safe
# whatever its method.
_REFUSED_UNDONE = frozenset(
    {"story-busy", "conversation-busy", "idempotency-key-in-progress", "rate-limited", "too-busy"}
)


# --- what a request is --------------------------------------------------------


@dataclass(frozen=True)
class Stream:
    """How a server-sent event stream is read: `decode` turns an event into
    what the caller gets (None: nothing); `ends` says whether it was the last;
    `resumable` streams are reconnected with Last-Event-ID when cut short."""

    decode: Callable[[ServerSentEvent], Any]
    ends: Callable[[Any], bool]
    resumable: bool = False


@dataclass(frozen=True)
class Call:
    """One API operation, as data."""

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    # Sending it twice does no more than once (GET/DELETE, or an Idempotency-Key).
    idempotent: bool = False
    authenticated: bool = True
    # Turns the success answer into what the method returns.
    answer: Callable[[httpx.Response], Any] | None = None
    stream: Stream | None = None
    # A body that is not JSON: raw bytes (`content`), or a multipart form of
    # `form` fields and `files` (a presigned storage POST).
    content: bytes | None = None
    form: Mapping[str, str] | None = None
    files: Mapping[str, Any] | None = None

    @classmethod
    def once(cls, method: str, path: str, idempotency_key: str | None = None, **kwargs) -> Call:
        """A POST made safe to retry with an Idempotency-Key (a fresh one unless given):
        the same key goes with every retry, so the server does the work once."""
        key = idempotency_key or str(uuid.uuid4())
        headers = {**kwargs.pop("headers", {}), "Idempotency-Key": key}
        return cls(method, path, headers=headers, idempotent=True, **kwargs)


@dataclass(frozen=True)
class Send:
    request: httpx.Request
    stream: bool = False


@dataclass(frozen=True)
class Read:
    """Read (and close) a streamed answer's body: it is an error to decode."""

    response: httpx.Response


@dataclass(frozen=True)
class Sleep:
    seconds: float


Action = Send | Read | Sleep
Exchange = Generator[Action, Any, httpx.Response]
# Several calls in a row (an upload: create, send the bytes, complete): a
# generator that yields each Call (and is sent its answer) or a Sleep, and
# returns the result; both clients run it, so such helpers are written once.
Flow = Generator[Call | Sleep, Any, Any]


# --- retries ------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and jitter; Retry-After is
    honoured up to `max_retry_after` seconds (a longer wait is the caller's
    decision: the error is raised)."""

    max_retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 30.0

    def backoff_delay(self, attempt: int) -> float:
        return min(self.max_backoff, self.backoff * 2**attempt) * random.uniform(0.5, 1.0)

    def after_error(self, call: Call, error: FabulaError, attempt: int) -> float | None:
        """Seconds to wait before sending `call` again, or None to raise `error`."""
        if attempt >= self.max_retries or not self._retryable(call, error):
            return None
        if error.retry_after is not None:
            return error.retry_after if error.retry_after <= self.max_retry_after else None
        return self.backoff_delay(attempt)

    def after_transport_error(self, call: Call, exc: httpx.TransportError, attempt: int) -> float | None:
        if attempt >= self.max_retries:
            return None
        # Not connected: the request never left, any call may go again.
        never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
        return self.backoff_delay(attempt) if never_sent or call.idempotent else None

    @staticmethod
    def _retryable(call: Call, error: FabulaError) -> bool:
        if error.slug in _REFUSED_UNDONE:
            return True
        if not call.idempotent:
            return False
        return error.status == 503 or (error.status == 409 and error.retry_after is not None)


# --- credentials --------------------------------------------------------------


class Credentials:
    """An API key, or tokens that are refreshed before they expire (and once
    more after a 401). `on_tokens` is told of every new pair, to keep them."""

    def __init__(
        self,
        api_key: str | None = None,
        tokens: Tokens | None = None,
        on_tokens: Callable[[Tokens], None] | None = None,
    ) -> None:
        self.api_key = api_key
        self.tokens = tokens
        self.on_tokens = on_tokens

    def header(self) -> dict[str, str]:
        secret = self.api_key or (self.tokens.access_token if self.tokens else None)
        return {"Authorization": f"Bearer {secret}"} if secret else {}

    @property
    def can_refresh(self) -> bool:
        return self.api_key is None and self.tokens is not None and bool(self.tokens.refresh_token)

    def expiring(self) -> bool:
        expires_at = self.tokens.expires_at if self.tokens else None
        return (
            self.can_refresh
            and expires_at is not None
            and expires_at - dt.datetime.now(dt.UTC) < REFRESH_MARGIN
        )

    def accept(self, tokens: Tokens) -> Tokens:
        tokens = tokens if tokens.expires_at else tokens.with_expiry()
        self.tokens = tokens
        if self.on_tokens is not None:
            self.on_tokens(tokens)
        return tokens

    def clear(self) -> None:
        self.tokens = None


# --- the shared core ----------------------------------------------------------


class Core:
    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        retry: RetryPolicy,
        timeout: float,
        stream_timeout: float,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.retry = retry
        self.timeout = httpx.Timeout(timeout)
        # Between two events of a stream: the job stream sends a comment
        # every 15 s; a model may think for a while before its first words.
        self.stream_timeout = httpx.Timeout(timeout, read=stream_timeout)

    def build(self, call: Call) -> httpx.Request:
        headers = {
            "User-Agent": USER_AGENT,
            "Accept": EVENT_STREAM if call.stream else "application/json",
            **(self.credentials.header() if call.authenticated else {}),
            **call.headers,
        }
        params = {k: v for k, v in (call.params or {}).items() if v is not None}
        timeout = self.stream_timeout if call.stream else self.timeout
        # An absolute URL (a signed upload target) is used as it is.
        absolute = call.path.startswith(("http://", "https://"))
        return httpx.Request(
            call.method,
            call.path if absolute else self.base_url + call.path,
            params=params,
            json=call.body,
            content=call.content,
            data=call.form,
            files=call.files,
            headers=headers,
            extensions={"timeout": timeout.as_dict()},
        )

    def exchange(self, call: Call) -> Exchange:
        """Send `call` until it succeeds (the answer is returned) or fails for good (raised)."""
        attempt = 0
        refreshed = False
        while True:
            if call.authenticated and self.credentials.expiring():
                yield from self._refresh()
                refreshed = True
            try:
                response = yield Send(self.build(call), stream=call.stream is not None)
            except httpx.TransportError as exc:
                delay = self.retry.after_transport_error(call, exc, attempt)
                if delay is None:
                    raise APIConnectionError(f"{type(exc).__name__}: {exc}") from exc
                attempt += 1
                yield Sleep(delay)
                continue
            if response.is_success:
                return response
            if call.stream is not None:
                yield Read(response)
            if (
                response.status_code == 401
                and call.authenticated
                and not refreshed
                and self.credentials.can_refresh
            ):
                # The access token was refused before its time (e.g. a new
                # signing key): one refresh, then the same request again.
                yield from self._refresh()
                refreshed = True
                continue
            error = error_from_response(response)
            delay = self.retry.after_error(call, error, attempt)
            if delay is None:
                raise error
            attempt += 1
            yield Sleep(delay)

    def _refresh(self) -> Generator[Action, Any, None]:
        assert self.credentials.tokens is not None
        body = {"refresh_token": self.credentials.tokens.refresh_token}
        response = yield Send(self.build(Call("POST", "/v1/auth/refresh", body=body, authenticated=False)))
        if not response.is_success:
            raise error_from_response(response)  # AuthenticationError: log in again
        self.credentials.accept(Tokens.model_validate(response.json()))

    @staticmethod
    def answer(call: Call, response: httpx.Response) -> Any:
        if call.answer is None:
            return None
        return call.answer(response)


def model_answer(model: Any) -> Callable[[httpx.Response], Any]:
    """Parse the JSON answer as `model` (a pydantic model class)."""
    return lambda response: model.model_validate(response.json())


class StreamReader:
    """What a stream has got to: the last event id (to resume from), whether
    its last event came; shared by the sync and async iteration."""

    MAX_RESUMES = 5

    def __init__(self, call: Call) -> None:
        assert call.stream is not None
        self.call = call
        self.stream = call.stream
        self.last_id: str | None = None
        self.finished = False
        self.resumes = 0

    def next_call(self) -> Call:
        if self.last_id is None:
            return self.call
        return replace(self.call, headers={**self.call.headers, "Last-Event-ID": self.last_id})

    def take(self, sse: ServerSentEvent) -> Any:
        if sse.id:
            self.last_id = sse.id
        item = self.stream.decode(sse)
        if item is not None and self.stream.ends(item):
            self.finished = True
        return item

    def resume_after(self, failure: httpx.TransportError | None) -> bool:
        """After the answer ended: True to reconnect, False when done; raises
        when it ended too early and cannot be resumed."""
        if self.finished:
            return False
        if self.stream.resumable and self.resumes < self.MAX_RESUMES:
            self.resumes += 1
            return True
        if failure is not None:
            raise APIConnectionError(f"the stream broke: {type(failure).__name__}: {failure}")
        raise APIConnectionError("the stream ended before its last event")


def event_data(sse: ServerSentEvent) -> dict[str, Any]:
    """An event's JSON data; an `error` event is raised as its problem."""
    data = json.loads(sse.data) if sse.data else {}
    if sse.event == "error":
        raise error_from_problem(None, data)
    return data
