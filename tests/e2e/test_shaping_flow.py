"""Shaping a story over HTTP against real processes: regenerate a segment
twice and pick the second version, edit a segment and restore the original,
branch from segment 2 and switch back."""

from __future__ import annotations

import pytest

from .test_story_flow import parse_sse

pytestmark = pytest.mark.e2e


def story_with(api, writer, segments: int) -> dict:
    created = api.create_story(writer, genre="mystery", characters=["Mara"])
    assert created.status_code == 201, created.text
    story_id = created.json()["id"]
    for _ in range(segments - 1):
        response = api.http.post(f"/v1/stories/{story_id}/continue", headers=writer.headers)
        assert response.status_code == 201, response.text
    return read(api, writer, story_id)


def read(api, writer, story_id: str) -> dict:
    response = api.http.get(f"/v1/stories/{story_id}", headers=writer.headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_regenerate_twice_and_select_the_second_version(api):
    writer = api.register()
    story = story_with(api, writer, 2)
    story_id, original = story["id"], story["segments"][1]
    url = f"/v1/stories/{story_id}/segments/{original['id']}"

    first = api.http.post(
        f"{url}/regenerate", json={"direction": "Darker."}, headers=writer.headers
    )
    streamed = api.http.post(
        f"{url}/regenerate", headers={**writer.headers, "Accept": "text/event-stream"}
    )

    assert first.status_code == 201, first.text
    assert streamed.status_code == 200, streamed.text
    events = parse_sse(streamed.text)
    assert {name for name, _ in events[:-1]} == {"token"} and events[-1][0] == "segment"
    second = events[-1][1]
    assert (second["position"], second["alternative_number"], second["alternative_count"]) == (
        2,
        3,
        3,
    )
    assert read(api, writer, story_id)["segments"][1]["id"] == second["id"]

    listed = api.http.get(f"{url}/alternatives", headers=writer.headers).json()
    assert [item["id"] for item in listed["items"]] == [
        original["id"],
        first.json()["id"],
        second["id"],
    ]
    # The second version asked for is the first regeneration: pick it.
    chosen = api.http.post(
        f"{url}/alternatives/{first.json()['id']}/select", headers=writer.headers
    )
    assert chosen.status_code == 200, chosen.text
    assert chosen.json()["head_segment_id"] == first.json()["id"]
    now = read(api, writer, story_id)
    assert [s["id"] for s in now["segments"]] == [story["segments"][0]["id"], first.json()["id"]]
    assert now["segment_count"] == 2
    # Each regeneration used one generation.
    api.wait_for(lambda: api.usage(writer)["generations_used"] == 4)


def test_edit_a_segment_then_restore_the_original(api):
    writer = api.register()
    story = story_with(api, writer, 1)
    opening = story["segments"][0]
    url = f"/v1/stories/{story['id']}/segments/{opening['id']}"

    edited = api.http.patch(url, json={"text": "The fog lifted at noon."}, headers=writer.headers)
    assert edited.status_code == 200, edited.text
    assert (edited.json()["text"], edited.json()["edited"]) == ("The fog lifted at noon.", True)
    assert read(api, writer, story["id"])["segments"][0]["text"] == "The fog lifted at noon."

    [revision] = api.http.get(f"{url}/revisions", headers=writer.headers).json()["items"]
    assert (revision["text"], revision["source"]) == (opening["text"], "generated")
    restored = api.http.post(f"{url}/revisions/{revision['id']}/restore", headers=writer.headers)

    assert restored.status_code == 200, restored.text
    assert read(api, writer, story["id"])["segments"][0]["text"] == opening["text"]
    revisions = api.http.get(f"{url}/revisions", headers=writer.headers).json()["items"]
    assert [r["source"] for r in revisions] == ["edited", "generated"]


def test_branch_from_segment_two_and_switch_back(api, problem):
    writer = api.register()
    story = story_with(api, writer, 3)
    story_id, segments = story["id"], story["segments"]

    branched = api.http.post(
        f"/v1/stories/{story_id}/continue",
        json={"after_segment_id": segments[1]["id"]},
        headers=writer.headers,
    )

    assert branched.status_code == 201, branched.text
    assert (branched.json()["position"], branched.json()["parent_id"]) == (3, segments[1]["id"])
    assert [s["id"] for s in read(api, writer, story_id)["segments"]] == [
        segments[0]["id"],
        segments[1]["id"],
        branched.json()["id"],
    ]
    branches = api.http.get(f"/v1/stories/{story_id}/branches", headers=writer.headers).json()
    assert [(b["id"], b["fork_position"], b["is_current"]) for b in branches["items"]] == [
        (branched.json()["id"], 3, True),
        (segments[2]["id"], 2, False),
    ]

    back = api.http.post(
        f"/v1/stories/{story_id}/branches/{segments[2]['id']}/select", headers=writer.headers
    )

    assert back.status_code == 200, back.text
    assert [s["id"] for s in read(api, writer, story_id)["segments"]] == [
        s["id"] for s in segments
    ]
    # Someone else's story: 404, whatever the id.
    stranger = api.register()
    problem(api.http.get(f"/v1/stories/{story_id}/branches", headers=stranger.headers), 404)
