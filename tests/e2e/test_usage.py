"""Usage a user can trust, over HTTP against real processes: counted the moment
a call returns, logs and a breakdown that add up, a 402 that says why."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import pytest

pytestmark = pytest.mark.e2e

FREE_GENERATIONS = 5


def all_logs(api, writer, limit: int) -> list[dict]:
    items, cursor = [], None
    while True:
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        response = api.http.get("/v1/usage/logs", params=params, headers=writer.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= limit
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def test_usage_counts_every_returned_call_at_once_and_adds_up(api, problem):
    writer = api.register()
    with (
        ThreadPoolExecutor(max_workers=FREE_GENERATIONS) as pool,
        httpx.Client(base_url=api.stack.base_url, timeout=60) as http,
    ):
        responses = list(
            pool.map(
                lambda i: http.post(
                    "/v1/stories", json={"genre": "mystery", "title": f"At once {i}"},
                    headers=writer.headers,
                ),
                range(FREE_GENERATIONS),
            )
        )
    assert [r.status_code for r in responses] == [201] * FREE_GENERATIONS, responses[0].text

    # Asked at once, before billing may have settled anything.
    usage = api.usage(writer)
    assert usage["generations_used"] == FREE_GENERATIONS
    assert 0 <= usage["generations_in_progress"] <= FREE_GENERATIONS

    # The sixth is refused, and the problem says by which plan and until when.
    refused = problem(api.create_story(writer), 402, "quota-exceeded")
    assert (refused["plan"], refused["quota"], refused["limit"]) == (
        "free", "generations", FREE_GENERATIONS
    )
    assert refused["resets_at"] == usage["period_end"]

    # Once settled: the same count, nothing in progress, and logs and breakdown
    # that add up to the account. The refused call is logged too: failed,
    # without tokens, not counted.
    calls = FREE_GENERATIONS + 1
    settled = api.wait_for(
        lambda: (u := api.usage(writer))["generations_in_progress"] == 0
        and len(all_logs(api, writer, limit=100)) == calls
        and u
    )
    assert settled["generations_used"] == FREE_GENERATIONS
    logs = all_logs(api, writer, limit=2)
    assert len({log["id"] for log in logs}) == calls
    counted = [log for log in logs if log["counted"]]
    assert {log["story_id"] for log in counted} == {r.json()["id"] for r in responses}
    assert {(log["operation"], log["outcome"]) for log in counted} == {("opening", "completed")}
    [refused_call] = [log for log in logs if not log["counted"]]
    assert (refused_call["outcome"], refused_call["prompt_tokens"]) == ("failed", 0)
    assert [log["created_at"] for log in logs] == sorted(
        (log["created_at"] for log in logs), reverse=True
    )
    breakdown = api.http.get("/v1/usage/breakdown", headers=writer.headers)
    assert breakdown.status_code == 200, breakdown.text
    breakdown = breakdown.json()
    logged_cost = sum(Decimal(log["cost_usd"]) for log in logs)
    assert Decimal(breakdown["total"]["cost_usd"]) == logged_cost
    assert Decimal(settled["cost_used_usd"]) == logged_cost
    assert (breakdown["total"]["generations"], breakdown["total"]["calls"]) == (
        FREE_GENERATIONS, calls
    )
    assert [row["operation"] for row in breakdown["by_operation"]] == ["opening"]
    assert sum(row["calls"] for row in breakdown["by_model"]) == calls
    assert breakdown["period_end"] == settled["period_end"]

    # A cursor that is not one of ours is refused, naming it.
    forged = api.http.get("/v1/usage/logs", params={"cursor": "forged!"}, headers=writer.headers)
    assert "cursor" in problem(forged, 422, "validation-error")["detail"]
