"""What the client retries, and which exception a problem becomes: the
decisions only (the running stack's tests in tests/e2e/terminal show them
happen)."""

from __future__ import annotations

import httpx
import pytest
from fabula_client import (
    Conflict,
    FabulaError,
    NotFound,
    QuotaExceeded,
    RetryPolicy,
    ServerError,
    ServiceUnavailable,
    StoryBusy,
)
from fabula_client._core import Call
from fabula_client.errors import error_from_response

BASE = "https://fabula.dev/problems/"


def answer(status: int, slug: str, retry_after: str | None = None, **extra) -> FabulaError:
    headers = {"Retry-After": retry_after} if retry_after else {}
    body = {"type": BASE + slug, "title": slug.title(), "status": status, "detail": "d", **extra}
    return error_from_response(httpx.Response(status, json=body, headers=headers))


def test_problems_become_their_exception_even_of_types_this_client_does_not_know():
    busy = answer(409, "story-busy", "2")
    assert isinstance(busy, StoryBusy) and busy.retry_after == 2.0
    quota = answer(402, "quota-exceeded", plan="free", quota="generations", limit=5)
    assert isinstance(quota, QuotaExceeded) and (quota.plan, quota.limit) == ("free", 5)
    assert isinstance(answer(404, "not-found"), NotFound)
    # A newer server's types: the status's family.
    assert isinstance(answer(503, "some-new-outage"), ServiceUnavailable)
    assert isinstance(answer(409, "some-new-conflict"), Conflict)
    assert isinstance(answer(502, "bad-gateway"), ServerError)
    # Not even a problem document: still one readable line.
    plain = error_from_response(httpx.Response(500, text="<html>oops</html>"))
    assert isinstance(plain, ServerError) and plain.line().startswith("Internal Server Error")


def test_only_what_is_safe_to_send_again_is_retried_and_never_forever():
    policy = RetryPolicy(max_retries=3, max_retry_after=30)
    post = Call("POST", "/v1/projects")  # no Idempotency-Key: might be done twice
    keyed = Call.once("POST", "/v1/stories")
    get = Call("GET", "/v1/stories", idempotent=True)
    outage = answer(503, "service-unavailable", "2")

    assert policy.after_error(post, outage, 0) is None
    assert policy.after_error(keyed, outage, 0) == 2.0
    assert policy.after_error(get, outage, 2) == 2.0
    assert policy.after_error(get, outage, 3) is None  # bounded
    # Refused before anything was done: any call may go again.
    assert policy.after_error(post, answer(409, "story-busy", "1"), 0) == 1.0
    # A wait longer than the caller accepts is theirs to decide.
    assert policy.after_error(get, answer(503, "service-unavailable", "120"), 0) is None
    assert policy.after_error(get, answer(404, "not-found"), 0) is None
    # No Retry-After: exponential backoff with jitter, capped.
    waits = [policy.after_error(get, answer(503, "service-unavailable"), n) for n in range(3)]
    assert 0.25 <= waits[0] <= 0.5 and 1.0 <= waits[2] <= 2.0
    assert keyed.headers["Idempotency-Key"] == keyed.headers["Idempotency-Key"]
    assert Call.once("POST", "/v1/stories").headers != keyed.headers  # one key per call


def test_a_broken_job_stream_resumes_after_the_last_event_seen():
    from fabula_client._core import StreamReader
    from fabula_client.resources import JOB_STREAM, STORY_STREAM
    from httpx_sse import ServerSentEvent

    def job_event(sequence: int, kind: str) -> ServerSentEvent:
        data = f'{{"sequence": {sequence}, "type": "{kind}", "progress_percentage": 0}}'
        return ServerSentEvent(event=kind, data=data, id=str(sequence))

    reader = StreamReader(Call("GET", "/v1/jobs/j/events", idempotent=True, stream=JOB_STREAM))
    assert "Last-Event-ID" not in reader.next_call().headers
    reader.take(job_event(1, "queued"))
    reader.take(job_event(2, "stage_started"))
    assert reader.resume_after(httpx.ReadError("cut")) is True  # not finished: reconnect
    assert reader.next_call().headers["Last-Event-ID"] == "2"
    reader.take(job_event(3, "done"))
    assert reader.finished and reader.resume_after(None) is False

    # A story's stream has no ids to resume from: a break is an error, not a silent end.
    story = StreamReader(Call("POST", "/v1/stories/s/continue", stream=STORY_STREAM))
    story.take(ServerSentEvent(event="token", data='{"text": "The"}'))
    with pytest.raises(FabulaError, match="broke"):
        story.resume_after(httpx.ReadError("cut"))
