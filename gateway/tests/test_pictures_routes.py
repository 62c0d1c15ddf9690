"""Tutorial, drawing and picture story routes against fakes of stories'
TutorialsService and DrawingsService (fakes_pictures.py)."""

from __future__ import annotations

import grpc
import pytest

from .conftest import GENERATION_DEADLINE_SECONDS
from .fakes import FakeBackends
from .fakes_pictures import DRAWING_ID, PHOTO_ID, STORY_ID, TUTORIAL_ID

TUTORIAL = {
    "category": "animals",
    "title": {"en": "A Fish", "de": "Ein Fisch"},
    "description": {"en": "A simple fish.", "de": "Ein einfacher Fisch."},
    "steps": [{"instruction": {"en": "Draw an oval.", "de": "Zeichne ein Oval."}}],
}


@pytest.mark.parametrize(
    ("query", "headers", "expected"),
    [
        ("", {}, "en"),
        ("?lang=de", {}, "de"),
        ("", {"Accept-Language": "de-AT, de;q=0.9, en;q=0.5"}, "de"),
        ("", {"Accept-Language": "fr, en;q=0.4, de;q=0.3"}, "en"),
        ("?lang=en", {"Accept-Language": "de"}, "en"),
    ],
)
async def test_tutorials_are_listed_in_the_language_asked_for(
    api, backends: FakeBackends, auth, query, headers, expected
):
    response = await api.get(f"/v1/tutorials{query}", headers={**auth, **headers})
    assert response.status_code == 200, response.text
    [item] = response.json()["items"]
    assert item["lang"] == expected
    assert item["title"] == {"en": "A Sitting Cat", "de": "Eine sitzende Katze"}[expected]
    assert item["total_steps"] == 2 and "steps" not in item


async def test_a_tutorial_has_its_steps_and_a_category_filter(api, backends, auth):
    got = (await api.get(f"/v1/tutorials/{TUTORIAL_ID}?lang=de", headers=auth)).json()
    assert [s["step_number"] for s in got["steps"]] == [1, 2]
    assert got["steps"][0]["instruction"] == "Zeichne einen großen Kreis."
    assert got["steps"][0]["image_url"].startswith("https://")
    await api.get("/v1/tutorials?category=nature", headers=auth)
    assert backends.only("ListTutorials").request.category == "nature"


async def test_others_may_not_write_tutorials(api, backends, auth, problem):
    problem(await api.post("/v1/tutorials", json=TUTORIAL, headers=auth), 403)
    problem(await api.patch(f"/v1/tutorials/{TUTORIAL_ID}", json={}, headers=auth), 403)
    assert not [c for c in backends.calls if c.method.endswith("Tutorial")]


async def test_superusers_write_tutorials_in_both_languages(
    api, backends, auth, user_id, problem
):
    backends.users.superusers = {user_id}
    missing_german = {**TUTORIAL, "title": {"en": "A Fish"}}
    problem(await api.post("/v1/tutorials", json=missing_german, headers=auth), 422)
    assert not [c for c in backends.calls if c.method == "CreateTutorial"]

    created = await api.post("/v1/tutorials", json=TUTORIAL, headers=auth)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"/v1/tutorials/{TUTORIAL_ID}"
    assert created.json()["title"] == {"en": "A Fish", "de": "Ein Fisch"}
    sent = backends.only("CreateTutorial").request
    assert sent.tutorial.steps[0].instruction.de == "Zeichne ein Oval."

    changed = await api.patch(
        f"/v1/tutorials/{TUTORIAL_ID}",
        json={"title": {"en": "A Goldfish", "de": "Ein Goldfisch"}},
        headers=auth,
    )
    assert changed.json()["title"]["de"] == "Ein Goldfisch"
    assert list(backends.only("UpdateTutorial").request.fields) == ["title"]


async def test_drawings_are_recorded_edited_listed_and_deleted(api, backends, auth, user_id):
    created = await api.post(
        "/v1/drawings", json={"photo_id": PHOTO_ID, "tutorial_id": TUTORIAL_ID}, headers=auth
    )
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"/v1/drawings/{DRAWING_ID}"
    assert created.json()["image_url"] == f"/v1/photos/{PHOTO_ID}"
    assert created.json()["image"]["url"] == f"https://media.example/{PHOTO_ID}/1024"
    sent = backends.only("CreateDrawing").request
    assert (sent.user_id, sent.photo_id, sent.tutorial_id) == (user_id, PHOTO_ID, TUTORIAL_ID)

    edited = await api.post(
        f"/v1/drawings/{DRAWING_ID}/edits", json={"photo_id": "edited-photo"}, headers=auth
    )
    assert edited.status_code == 201
    assert edited.json()["edits"][0] == {
        **edited.json()["edits"][0],
        "version": 1,
        "photo_id": "edited-photo",
        "image_url": "/v1/photos/edited-photo",
    }
    # The newest version is what a gallery shows.
    assert edited.json()["image"]["thumbnail_url"] == "https://media.example/edited-photo/256"

    page = (await api.get("/v1/drawings?limit=5", headers=auth)).json()
    assert page["next_cursor"] == "next" and page["items"][0]["id"] == DRAWING_ID
    assert (await api.delete(f"/v1/drawings/{DRAWING_ID}", headers=auth)).status_code == 204


async def test_a_photo_not_yours_or_not_ready_is_a_clear_problem(api, backends, auth, problem):
    backends.fail("CreateDrawing", grpc.StatusCode.NOT_FOUND, "photo not found")
    problem(await api.post("/v1/drawings", json={"photo_id": PHOTO_ID}, headers=auth), 404)
    backends.fail(
        "CreateDrawing",
        grpc.StatusCode.FAILED_PRECONDITION,
        "the photo is not processed yet",
        reason="photo-not-ready",
    )
    problem(await api.post("/v1/drawings", json={"photo_id": PHOTO_ID}, headers=auth), 409)
    problem(await api.get("/v1/drawings/not-a-uuid", headers=auth), 404)


async def test_a_picture_story_is_written_with_the_generation_deadline(api, backends, auth):
    response = await api.post(
        f"/v1/drawings/{DRAWING_ID}/stories", json={"direction": "a fox"}, headers=auth
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/v1/picture-stories/{STORY_ID}"
    assert body["title"] == {"en": "The Red Adventure", "de": "Das Abenteuer in Rot"}
    assert body["generated_by"] == {"provider": "offline", "model": "offline-v1", "is_language_model": False}
    assert body["moderation"]["checker"] == "offline-wordlist"
    assert (body["direction"], body["generation_time_ms"], body["image_url"]) == (
        "a fox", 12, f"/v1/photos/{PHOTO_ID}",
    )
    # The picture, ready to show: signed URLs from media, display size and thumbnail.
    assert body["image"] == {
        "url": f"https://media.example/{PHOTO_ID}/1024",
        "thumbnail_url": f"https://media.example/{PHOTO_ID}/256",
        "expires_at": "2030-03-17T17:46:40Z",
    }
    assert backends.only("GetPhoto").request.photo_id == PHOTO_ID
    call = backends.only("WritePictureStory")
    assert call.time_remaining > GENERATION_DEADLINE_SECONDS - 5
    # A body is optional.
    plain = await api.post(f"/v1/drawings/{DRAWING_ID}/stories", headers=auth)
    assert plain.status_code == 201


async def test_picture_stories_are_favourited_and_listed_by_favourite(api, backends, auth, problem):
    liked = await api.patch(f"/v1/picture-stories/{STORY_ID}", json={"is_favorite": True}, headers=auth)
    assert liked.json()["is_favorite"] is True
    favourites = (await api.get("/v1/picture-stories?favorite=true", headers=auth)).json()
    assert favourites["items"][0]["is_favorite"] is True
    assert backends.only("ListPictureStories").request.favorite_only is True
    problem(await api.patch(f"/v1/picture-stories/{STORY_ID}", json={"is_favorite": "yes please"}, headers=auth), 422)
    assert (await api.get(f"/v1/picture-stories/{STORY_ID}", headers=auth)).status_code == 200
    assert (await api.delete(f"/v1/picture-stories/{STORY_ID}", headers=auth)).status_code == 204
    backends.fail("GetPictureStory", grpc.StatusCode.NOT_FOUND, "picture story not found")
    problem(await api.get(f"/v1/picture-stories/{STORY_ID}", headers=auth), 404)


async def test_a_picture_story_is_answered_without_its_image_when_media_cannot_give_it(
    api, backends, auth
):
    backends.fail("GetPhoto", grpc.StatusCode.UNAVAILABLE, "media is down")
    response = await api.get(f"/v1/picture-stories/{STORY_ID}", headers=auth)
    assert response.status_code == 200, response.text
    assert response.json()["image"] is None
    assert response.json()["image_url"] == f"/v1/photos/{PHOTO_ID}"
    # The lookup is bounded: a slow media service cannot hold the read.
    assert backends.only("GetPhoto").time_remaining < 2.5  # not the usual deadline


async def test_a_blocked_direction_is_a_content_blocked_problem_naming_the_part(
    api, backends, auth, problem
):
    backends.fail(
        "WritePictureStory",
        grpc.StatusCode.INVALID_ARGUMENT,
        "the direction is not suitable for a young writer's account",
        reason="content-blocked",
        metadata={"part": "direction", "checker": "offline-wordlist"},
    )
    body = problem(
        await api.post(f"/v1/drawings/{DRAWING_ID}/stories", json={"direction": "blood"}, headers=auth),
        422,
    )
    assert body["type"].endswith("/content-blocked")
    assert body["part"] == "direction"


async def test_a_child_accounts_requests_carry_the_child_safe_mark(api, backends, auth, user_id):
    await api.post(f"/v1/drawings/{DRAWING_ID}/stories", json={}, headers=auth)
    assert "x-fabula-child-safe" not in backends.only("WritePictureStory").metadata

    backends.recorder.calls.clear()
    backends.users.children = {user_id}
    # The principal is asked again after a birthdate change (PATCH /v1/me).
    await api.patch("/v1/me", json={"birthdate": "2019-05-01"}, headers=auth)
    await api.post(f"/v1/drawings/{DRAWING_ID}/stories", json={}, headers=auth)
    assert backends.only("WritePictureStory").metadata["x-fabula-child-safe"] == "1"
