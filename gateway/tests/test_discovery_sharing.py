"""Search and filters of GET /v1/stories, GET /v1/stories/stats and share
links through the real app, against the fake stories service."""

from __future__ import annotations

import grpc
import pytest
from fabula_common.tracing import configure_tracing, shutdown_tracing
from fabula_gateway.app import create_app
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from .conftest import GRPC_DEADLINE_SECONDS
from .fakes import FakeBackends
from .fakes_discovery import SHARE_TOKEN

STORY_ID = "6a1f0c2e-9d8b-4e7a-8c6d-5b4a3f2e1d0c"


# ------------------------------------------------------------ search and filters


async def test_search_and_filters_reach_the_service_and_hits_come_back(
    api, backends: FakeBackends, auth, user_id
):
    response = await api.get(
        "/v1/stories",
        params={
            "q": "lighthouse -storm",
            "genre": "Mystery",
            "is_complete": "false",
            "favorite": "true",
            "limit": 2,
        },
        headers=auth,
    )

    assert response.status_code == 200, response.text
    first = response.json()["items"][0]
    assert first["search"] == {
        "rank": 0.5,
        "snippet": "the «lighthouse -storm» at dusk",
        "segment_id": "segment-3",
    }
    sent = backends.only("ListStories")
    assert (sent.request.user_id, sent.request.query, sent.request.genre) == (
        user_id,
        "lighthouse -storm",
        "Mystery",
    )
    assert sent.request.HasField("is_complete") and sent.request.is_complete is False
    assert sent.request.HasField("is_favorite") and sent.request.is_favorite is True
    # The gateway's deadline (a callee may read it a little over).
    assert sent.time_remaining is not None and 0 < sent.time_remaining < GRPC_DEADLINE_SECONDS + 0.5


async def test_a_plain_list_sends_no_query_or_filter_and_items_have_no_hit(
    api, backends: FakeBackends, auth
):
    response = await api.get("/v1/stories", headers=auth)

    assert response.status_code == 200
    assert response.json()["items"][0]["search"] is None
    sent = backends.only("ListStories").request
    assert sent.query == "" and not any(
        sent.HasField(name) for name in ("genre", "is_complete", "is_favorite")
    )


@pytest.mark.parametrize(
    "params",
    [
        {"q": ""},
        {"q": "   "},
        {"q": "x" * 201},
        {"genre": ""},
        {"genre": "g" * 51},
        {"is_complete": "maybe"},
        {"favorite": "sometimes"},
    ],
)
async def test_bad_search_parameters_are_422_before_any_call(
    api, backends: FakeBackends, auth, problem, params
):
    problem(await api.get("/v1/stories", params=params, headers=auth), 422)
    assert [c for c in backends.calls if c.method == "ListStories"] == []


async def test_a_cursor_of_another_search_is_422(api, backends: FakeBackends, auth, problem):
    backends.stories.recorder.fail(
        "ListStories",
        grpc.StatusCode.INVALID_ARGUMENT,
        "cursor belongs to another query or filters",
        reason="invalid-argument",
    )
    response = await api.get("/v1/stories", params={"q": "fog", "cursor": "abc"}, headers=auth)
    assert "another query" in problem(response, 422)["detail"]


# ------------------------------------------------------------ statistics


async def test_stats_is_its_own_route_not_a_story_id(api, backends: FakeBackends, auth, user_id):
    response = await api.get("/v1/stories/stats", headers=auth)

    assert response.status_code == 200, response.text
    assert response.json() == {
        "total": 4,
        "completed": 2,
        "favorites": 1,
        "average_segments": 1.75,
        "total_words": 16,
        "genres": [
            {"genre": "mystery", "total": 3, "completed": 1, "words": 12},
            {"genre": "romance", "total": 1, "completed": 1, "words": 4},
        ],
    }
    assert backends.only("GetStoryStats").request.user_id == user_id
    assert [c for c in backends.calls if c.method == "GetStory"] == []


async def test_stats_needs_authentication(api, problem):
    problem(await api.get("/v1/stories/stats"), 401)


# ------------------------------------------------------------ sharing


async def test_share_read_anonymously_and_revoke(
    api, backends: FakeBackends, auth, user_id, problem
):
    shared = await api.post(f"/v1/stories/{STORY_ID}/share", headers=auth)

    assert shared.status_code == 201, shared.text
    assert shared.json() == {
        "token": SHARE_TOKEN,
        # Absolute, from the base URL the request came to.
        "url": f"http://gateway/v1/shared/{SHARE_TOKEN}",
        "created_at": "2025-01-01T12:00:00Z",
    }
    sent = backends.only("ShareStory").request
    assert (sent.user_id, sent.story_id) == (user_id, STORY_ID)

    # No Authorization header at all.
    read = await api.get(f"/v1/shared/{SHARE_TOKEN}")
    again = await api.get(f"/v1/shared/{SHARE_TOKEN}")
    assert (read.status_code, again.status_code) == (200, 200)
    assert again.headers["cache-control"] == "no-store"
    assert again.json() == {
        "title": "The Lighthouse Keeper",
        "genre": "mystery",
        "characters": ["Mara"],
        "is_complete": False,
        "segments": [
            {"position": 1, "kind": "opening", "text": "It began."},
            {"position": 2, "kind": "continuation", "text": "It went on."},
        ],
        "created_at": "2025-01-01T12:00:00Z",
        "updated_at": "2025-01-01T12:00:02Z",
        "view_count": 2,
    }
    assert backends.calls[-1].request.token == SHARE_TOKEN

    revoked = await api.delete(f"/v1/stories/{STORY_ID}/share", headers=auth)
    assert revoked.status_code == 204 and revoked.content == b""
    problem(await api.get(f"/v1/shared/{SHARE_TOKEN}"), 404)
    problem(await api.delete(f"/v1/stories/{STORY_ID}/share", headers=auth), 404)


async def test_sharing_needs_authentication_and_a_story_id(api, backends, auth, problem):
    problem(await api.post(f"/v1/stories/{STORY_ID}/share"), 401)
    problem(await api.delete(f"/v1/stories/{STORY_ID}/share"), 401)
    problem(await api.post("/v1/stories/not-a-story/share", headers=auth), 404)
    assert [c for c in backends.calls if c.method in ("ShareStory", "RevokeShare")] == []


async def test_a_share_token_is_never_logged_or_traced_in_full(
    backends: FakeBackends, make_settings, serve, auth, caplog
):
    exporter = InMemorySpanExporter()
    configure_tracing("gateway", exporter=exporter)
    try:
        addresses = {f"{name}_addr": backends.address for name in ("users", "stories", "billing")}
        async with serve(create_app(make_settings(**addresses))) as client:
            await client.post(f"/v1/stories/{STORY_ID}/share", headers=auth)
            with caplog.at_level("DEBUG", logger="fabula_gateway.access"):
                assert (await client.get(f"/v1/shared/{SHARE_TOKEN}")).status_code == 200
                assert (await client.get(f"/v1/shared/{SHARE_TOKEN}x")).status_code == 404
    finally:
        shutdown_tracing()

    access = [r for r in caplog.records if r.name == "fabula_gateway.access"]
    assert [r.path for r in access] == [f"/v1/shared/{SHARE_TOKEN[:4]}…"] * 2
    assert all(SHARE_TOKEN not in r.getMessage() for r in caplog.records)
    [read, _] = [
        span
        for span in exporter.get_finished_spans()
        if span.kind is SpanKind.SERVER and span.name == "GET /v1/shared/{token}"
    ]
    assert any("/v1/shared/" in str(value) for value in read.attributes.values())
    for span in exporter.get_finished_spans():
        assert SHARE_TOKEN not in str(dict(span.attributes or {})), span.name
