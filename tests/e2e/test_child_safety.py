"""Child-safe generation over HTTP against real processes and the offline
generator: an account whose profile birthdate says it is under 13 gets a 422
content-blocked refusal for an unsuitable direction (checked by the offline
word list), is charged nothing for it, and still writes suitable stories; an
adult's same direction is written as asked."""

from __future__ import annotations

import datetime as dt

import pytest

pytestmark = pytest.mark.e2e


def born_years_ago(years: int) -> str:
    today = dt.date.today()
    return today.replace(year=today.year - years, day=min(today.day, 28)).isoformat()


def test_an_under_13_account_gets_a_child_safe_refusal_and_pays_nothing(api, problem):
    child = api.register()
    # The birthdate question is a neutral profile field.
    profile = api.http.patch("/v1/me", json={"birthdate": born_years_ago(9)}, headers=child.headers)
    assert profile.status_code == 200, profile.text

    story = api.create_story(child, characters=["Pip"], opening_line="Pip found a map.")
    assert story.status_code == 201, story.text
    story_id = story.json()["id"]
    used = api.usage(child)["generations_used"]

    unsuitable = "Pip kills the guard and there is blood everywhere"
    refused = api.http.post(
        f"/v1/stories/{story_id}/continue", json={"direction": unsuitable}, headers=child.headers
    )
    body = problem(refused, 422, "/content-blocked")
    assert body["part"] == "direction"
    # Nothing was reserved or billed for the refused direction.
    assert api.usage(child)["generations_used"] == used

    suitable = api.http.post(
        f"/v1/stories/{story_id}/continue",
        json={"direction": "Pip shares the map with a friendly owl"},
        headers=child.headers,
    )
    assert suitable.status_code == 201, suitable.text
    api.wait_for(lambda: api.usage(child)["generations_used"] == used + 1)

    # What the child writes for a new story is read before anything is asked
    # or billed, and the refusal names it.
    unsuitable_start = api.create_story(
        child, characters=["Pip"], opening_line="Pip grabbed a gun to shoot the guard."
    )
    assert problem(unsuitable_start, 422, "/content-blocked")["part"] == "opening_line"
    assert "opening line" in unsuitable_start.json()["detail"]
    assert api.usage(child)["generations_used"] == used + 1

    # The council too: the question is read before anything is asked or billed.
    conversation = api.http.post("/v1/conversations", json={}, headers=child.headers).json()
    asked = api.http.post(
        f"/v1/conversations/{conversation['id']}/messages",
        json={"content": "How does Pip kill the guard?"},
        headers=child.headers,
    )
    assert problem(asked, 422, "/content-blocked")["part"] == "question"
    assert api.usage(child)["generations_used"] == used + 1

    # The same direction from an adult is written as asked.
    adult = api.register()
    api.http.patch("/v1/me", json={"birthdate": born_years_ago(30)}, headers=adult.headers)
    adult_story = api.create_story(adult).json()["id"]
    written = api.http.post(
        f"/v1/stories/{adult_story}/continue", json={"direction": unsuitable}, headers=adult.headers
    )
    assert written.status_code == 201, written.text
