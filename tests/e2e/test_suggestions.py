"""Story suggestions over HTTP against real processes: ideas from the offline
generator, their cost in the usage logs as a `suggestion`, no generation of
the plan used, and the per-user rate limit (10 a minute by default)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e

DEFAULT_RATE_LIMIT = 10


def logs_of(api, writer) -> list[dict]:
    response = api.http.get("/v1/usage/logs", params={"limit": 100}, headers=writer.headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_suggestions_give_ideas_cost_no_generation_and_are_rate_limited(api, problem):
    writer = api.register()

    response = api.http.get(
        "/v1/suggestions", params={"genre": "mystery", "count": 4}, headers=writer.headers
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["ideas"]) == 4
    for idea in body["ideas"]:
        assert idea["title"] and idea["opening_line"] and idea["characters"]
        assert idea["genre"] == "mystery"
    assert body["generated_by"] == {
        "provider": "offline",
        "model": "offline",
        "is_language_model": False,
    }

    # Its usage is logged as a suggestion, not counted against the plan.
    [log] = api.wait_for(lambda: logs_of(api, writer))
    assert (log["operation"], log["outcome"], log["counted"], log["story_id"]) == (
        "suggestion", "completed", False, None
    )
    usage = api.usage(writer)
    assert (usage["generations_used"], usage["generations_in_progress"]) == (0, 0)
    breakdown = api.http.get("/v1/usage/breakdown", headers=writer.headers).json()
    [row] = breakdown["by_operation"]
    assert (row["operation"], row["generations"], row["calls"]) == ("suggestion", 0, 1)

    # The rest of the minute's allowance, then a 429 that says when to retry.
    for _ in range(DEFAULT_RATE_LIMIT - 1):
        more = api.http.get("/v1/suggestions", headers=writer.headers)
        assert more.status_code == 200, more.text
    refused = api.http.get("/v1/suggestions", headers=writer.headers)
    problem(refused, 429, "rate-limited")
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # Another user is not held back by this one.
    other = api.register()
    assert api.http.get("/v1/suggestions", headers=other.headers).status_code == 200
    assert api.usage(writer)["generations_used"] == 0
