"""Memory, lore and context routes through the real app, against fakes of the
stories contract: the REST shapes a client relies on and the gRPC requests
(with their deadline) the stories service relies on."""

from __future__ import annotations

import grpc
import pytest

from .conftest import GRPC_DEADLINE_SECONDS
from .fakes import LORE_ENTRY_ID, FakeBackends

STORY_ID = "6a1f0c2e-9d8b-4e7a-8c6d-5b4a3f2e1d0c"
BASE = "https://fabula.dev/problems/"
ENTRY_KEYS = {
    "id", "story_id", "keys", "secondary_keys", "secondary_logic", "text", "priority",
    "constant", "enabled", "created_at", "updated_at",
}


def assert_problem(response, status: int, problem_type: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["type"], body["status"]) == (BASE + problem_type, status)
    return body


async def test_patch_story_sends_only_the_fields_given_and_answers_the_basic_story(
    api, backends: FakeBackends, auth, user_id
):
    response = await api.patch(
        f"/v1/stories/{STORY_ID}",
        headers=auth,
        json={"memory": "  Mara cannot swim. ", "authors_note": None, "is_favorite": True},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert "segments" not in body
    assert (body["memory"], body["authors_note"], body["is_favorite"]) == (
        "Mara cannot swim.", "", True
    )
    call = backends.only("UpdateStory")
    request = call.request
    assert (request.user_id, request.story_id) == (user_id, STORY_ID)
    assert not request.HasField("title")
    assert request.memory == "Mara cannot swim."
    # null clears: sent as empty.
    assert request.HasField("authors_note") and request.authors_note == ""
    assert request.HasField("is_favorite") and request.is_favorite
    assert GRPC_DEADLINE_SECONDS - 1.5 < call.time_remaining < GRPC_DEADLINE_SECONDS + 0.5


@pytest.mark.parametrize(
    "body",
    # (memory's 10,000-character limit is beyond these tests' body limit: see the
    # stories service's tests)
    [{"title": "  "}, {"title": None}, {"is_favorite": None}, {"authors_note": "n" * 2_001},
     {"colour": "red"}],
)
async def test_patch_story_refuses_bad_bodies_without_calling_stories(
    api, backends: FakeBackends, auth, body
):
    response = await api.patch(f"/v1/stories/{STORY_ID}", headers=auth, json=body)

    assert_problem(response, 422, "validation-error")
    assert backends.calls == [] or all(c.method != "UpdateStory" for c in backends.calls)


async def test_create_lore_entry_answers_201_with_location(api, backends: FakeBackends, auth):
    response = await api.post(
        f"/v1/stories/{STORY_ID}/lore",
        headers=auth,
        json={"keys": [" astrolabe "], "secondary_keys": ["brass"],
              "secondary_logic": "not_any", "text": "Brass.", "priority": 5},
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == ENTRY_KEYS
    assert response.headers["location"] == f"/v1/stories/{STORY_ID}/lore/{LORE_ENTRY_ID}"
    assert (body["keys"], body["secondary_logic"], body["priority"]) == (
        ["astrolabe"], "not_any", 5
    )
    request = backends.only("CreateLoreEntry").request
    assert list(request.keys) == ["astrolabe"] and request.enabled
    assert request.HasField("enabled")


@pytest.mark.parametrize(
    "body",
    [
        {"text": "no keys"},
        {"keys": ["a"], "text": ""},
        {"keys": ["a"], "text": "t" * 4001},
        {"keys": ["k" * 101], "text": "t"},
        {"keys": [f"k{n}" for n in range(21)], "text": "t"},
        {"keys": ["a"], "text": "t", "priority": 1001},
        {"keys": ["a"], "text": "t", "secondary_logic": "or"},
    ],
)
async def test_invalid_lore_entries_are_422(api, backends: FakeBackends, auth, body):
    response = await api.post(f"/v1/stories/{STORY_ID}/lore", headers=auth, json=body)

    assert_problem(response, 422, "validation-error")


async def test_a_constant_entry_needs_no_key(api, backends: FakeBackends, auth):
    response = await api.post(
        f"/v1/stories/{STORY_ID}/lore", headers=auth, json={"constant": True, "text": "Always."}
    )

    assert response.status_code == 201, response.text
    assert backends.only("CreateLoreEntry").request.constant


async def test_lore_entries_are_listed_read_and_deleted(api, backends: FakeBackends, auth):
    listed = await api.get(f"/v1/stories/{STORY_ID}/lore", headers=auth)
    got = await api.get(f"/v1/stories/{STORY_ID}/lore/{LORE_ENTRY_ID}", headers=auth)
    deleted = await api.delete(f"/v1/stories/{STORY_ID}/lore/{LORE_ENTRY_ID}", headers=auth)

    assert listed.status_code == 200 and [e["id"] for e in listed.json()["items"]] == [
        LORE_ENTRY_ID
    ]
    assert got.status_code == 200 and set(got.json()) == ENTRY_KEYS
    assert deleted.status_code == 204 and deleted.content == b""
    assert backends.only("DeleteLoreEntry").request.entry_id == LORE_ENTRY_ID


async def test_patch_lore_entry_sends_a_field_mask_of_what_was_sent(
    api, backends: FakeBackends, auth
):
    response = await api.patch(
        f"/v1/stories/{STORY_ID}/lore/{LORE_ENTRY_ID}",
        headers=auth,
        json={"text": "Changed.", "enabled": False},
    )

    assert response.status_code == 200, response.text
    request = backends.only("UpdateLoreEntry").request
    assert list(request.fields) == ["enabled", "text"]
    assert (request.text, request.enabled) == ("Changed.", False)


@pytest.mark.parametrize("body", [{}, {"text": None}, {"keys": None}])
async def test_patch_lore_entry_needs_a_field_and_no_nulls(api, backends: FakeBackends, auth, body):
    response = await api.patch(
        f"/v1/stories/{STORY_ID}/lore/{LORE_ENTRY_ID}", headers=auth, json=body
    )

    assert_problem(response, 422, "validation-error")


async def test_a_malformed_entry_or_segment_id_is_a_404(api, backends: FakeBackends, auth):
    entry = await api.get(f"/v1/stories/{STORY_ID}/lore/not-an-id", headers=auth)
    context = await api.get(
        f"/v1/stories/{STORY_ID}/context", params={"after_segment_id": "nope"}, headers=auth
    )

    assert_problem(entry, 404, "not-found")
    assert_problem(context, 404, "not-found")
    assert backends.calls == [] or all(
        c.method not in ("GetLoreEntry", "GetContext") for c in backends.calls
    )


async def test_another_users_entry_is_a_404(api, backends: FakeBackends, auth):
    backends.fail("GetLoreEntry", grpc.StatusCode.NOT_FOUND, "lore entry not found", "not-found")

    response = await api.get(f"/v1/stories/{STORY_ID}/lore/{LORE_ENTRY_ID}", headers=auth)

    assert assert_problem(response, 404, "not-found")["detail"] == "lore entry not found"


async def test_the_lore_limit_is_a_409(api, backends: FakeBackends, auth):
    backends.fail(
        "CreateLoreEntry", grpc.StatusCode.FAILED_PRECONDITION,
        "a story may have at most 200 lore entries", "conflict",
    )

    response = await api.post(
        f"/v1/stories/{STORY_ID}/lore", headers=auth, json={"keys": ["a"], "text": "t"}
    )

    assert_problem(response, 409, "conflict")


async def test_context_shows_sections_budget_and_prompt(api, backends: FakeBackends, auth):
    segment_id = "9c8b7a6f-5e4d-4c3b-a2f1-0e9d8c7b6a5f"

    response = await api.get(
        f"/v1/stories/{STORY_ID}/context",
        params={"after_segment_id": segment_id, "direction": " She opens it. "},
        headers=auth,
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "memory", "lore", "segments", "authors_note", "direction", "budget", "prompt"
    }
    assert body["memory"] == "Mara cannot swim."
    assert body["lore"] == [
        {"entry_id": LORE_ENTRY_ID, "text": "Brass.", "tokens": 2, "matched": "astrolabe"}
    ]
    assert body["direction"] == "She opens it."
    assert body["budget"] == {
        "max_tokens": 2048, "used_tokens": 20, "segments_omitted": 0, "lore_omitted": []
    }
    assert [m["role"] for m in body["prompt"]] == ["system", "user"]
    call = backends.only("GetContext")
    assert (call.request.after_segment_id, call.request.direction) == (segment_id, "She opens it.")
    assert GRPC_DEADLINE_SECONDS - 1.5 < call.time_remaining < GRPC_DEADLINE_SECONDS + 0.5


async def test_context_without_parameters_asks_for_the_head(api, backends: FakeBackends, auth):
    response = await api.get(f"/v1/stories/{STORY_ID}/context", headers=auth)

    assert response.status_code == 200, response.text
    request = backends.only("GetContext").request
    assert request.after_segment_id == "" and not request.HasField("direction")


async def test_lore_routes_need_authentication(api):
    for method, path in [
        ("PATCH", f"/v1/stories/{STORY_ID}"),
        ("GET", f"/v1/stories/{STORY_ID}/lore"),
        ("GET", f"/v1/stories/{STORY_ID}/context"),
    ]:
        response = await api.request(method, path, json={})
        assert response.status_code == 401, (method, path)
