"""GET /v1/suggestions through the real app, against a fake of the generation
service: the REST shape, what generation is sent (with the model deadline),
and how its refusals read (402 at the cost limit, 429 with Retry-After, 503,
422)."""

from __future__ import annotations

import grpc
import pytest
from fabula_common.errors import QuotaExceeded, RateLimited, UpstreamError

from .conftest import GENERATION_DEADLINE_SECONDS
from .fakes import FakeBackends

BASE = "https://fabula.dev/problems/"


async def test_suggestions_answer_ideas_and_who_wrote_them(
    api, backends: FakeBackends, auth, user_id
):
    response = await api.get(
        "/v1/suggestions", params={"genre": "noir", "count": 2, "locale": "de"}, headers=auth
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["generated_by"] == {
        "provider": "offline",
        "model": "offline",
        "is_language_model": False,
    }
    assert [idea["title"] for idea in body["ideas"]] == ["Idea 1", "Idea 2"]
    assert body["ideas"][0] == {
        "title": "Idea 1",
        "genre": "noir",
        "characters": ["Mara, a lighthouse keeper", "Tom, her brother"],
        "opening_line": "The fog came in at noon.",
    }
    call = backends.only("SuggestStories")
    assert (call.request.user_id, call.request.genre, call.request.count) == (user_id, "noir", 2)
    assert call.request.locale == "de"
    # A model call: it gets the generation deadline, not the default one.
    assert call.time_remaining is not None
    deadline = GENERATION_DEADLINE_SECONDS
    assert deadline - 1.5 < call.time_remaining < deadline + 0.5


async def test_suggestions_default_to_three_ideas_of_any_genre(api, backends: FakeBackends, auth):
    response = await api.get("/v1/suggestions", headers=auth)

    assert response.status_code == 200, response.text
    assert len(response.json()["ideas"]) == 3
    request = backends.only("SuggestStories").request
    assert (request.genre, request.count, request.locale) == ("", 3, "en")


@pytest.mark.parametrize(
    "params",
    [{"count": 0}, {"count": 11}, {"genre": "x" * 51}, {"locale": "fr"}, {"count": "many"}],
)
async def test_bad_parameters_are_a_422_and_reach_no_service(
    api, backends: FakeBackends, auth, problem, params
):
    response = await api.get("/v1/suggestions", params=params, headers=auth)

    problem(response, 422)
    assert not [call for call in backends.calls if call.method == "SuggestStories"]


async def test_suggestions_need_a_signed_in_user(api, problem):
    problem(await api.get("/v1/suggestions"), 401)


async def test_a_rate_limited_user_gets_a_429_with_retry_after(
    api, backends: FakeBackends, auth, problem
):
    backends.recorder.fail(
        "SuggestStories",
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "too many story suggestions: at most 10 every minute; retry in 42 s",
        reason=RateLimited.reason,
        retry_after=42,
    )

    response = await api.get("/v1/suggestions", headers=auth)

    body = problem(response, 429)
    assert body["type"] == BASE + "rate-limited"
    assert "at most 10 every minute" in body["detail"]
    assert response.headers["retry-after"] == "42"


async def test_a_user_who_spent_the_plans_cost_gets_a_402_naming_the_cost_limit(
    api, backends: FakeBackends, auth, problem
):
    detail = (
        "monthly cost quota exceeded: the free plan allows $10 per month "
        "($10 used, $0 in progress, $0.01 requested)"
    )
    backends.recorder.fail(
        "SuggestStories",
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        detail,
        reason=QuotaExceeded.reason,
        metadata={
            "plan": "free",
            "quota": "cost",
            "limit": "10",
            "resets_at": "2025-02-01T00:00:00Z",
        },
    )

    response = await api.get("/v1/suggestions", headers=auth)

    body = problem(response, 402)
    assert body["type"] == BASE + "quota-exceeded"
    assert body["detail"] == detail
    assert (body["plan"], body["quota"], body["limit"], body["resets_at"]) == (
        "free",
        "cost",
        "10",
        "2025-02-01T00:00:00Z",
    )
    assert "retry-after" not in response.headers


async def test_a_failing_model_is_a_503_saying_so(api, backends: FakeBackends, auth, problem):
    backends.recorder.fail(
        "SuggestStories",
        grpc.StatusCode.UNAVAILABLE,
        "the model's story ideas were not valid JSON",
        reason=UpstreamError.reason,
        retry_after=2,
    )

    response = await api.get("/v1/suggestions", headers=auth)

    body = problem(response, 503)
    assert body["type"] == BASE + "model-unavailable"
    assert body["detail"] == "the model's story ideas were not valid JSON"
    assert response.headers["retry-after"] == "2"


async def test_with_generation_down_suggestions_are_a_503(client, auth, problem):
    response = await client.get("/v1/suggestions", headers=auth)

    body = problem(response, 503)
    assert body["type"] == BASE + "service-unavailable"
    assert "retry-after" in response.headers
