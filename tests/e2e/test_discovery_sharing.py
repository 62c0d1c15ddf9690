"""Finding a story by a word of its third segment, sharing it, reading it
anonymously and revoking the link, over HTTP against the real processes."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.e2e

# Words the english search configuration ignores, or too common to tell apart.
STOP_WORDS = {
    "about", "after", "again", "against", "before", "being", "below", "between", "could",
    "doing", "during", "further", "having", "other", "ought", "should", "their", "theirs",
    "there", "these", "those", "through", "under", "until", "where", "which", "while",
    "would", "yours", "above", "because", "himself", "herself", "itself", "myself",
    "ourselves", "themselves", "yourself", "yourselves",
}


def distinctive_word(text: str, elsewhere: str) -> str:
    """A word of `text` that nothing in `elsewhere` shares its first letters
    with (so no stem of it is there either); the longest such."""
    words = {w.lower() for w in re.findall(r"[A-Za-z]{5,}", text)} - STOP_WORDS
    others = {w.lower()[:4] for w in re.findall(r"[A-Za-z]+", elsewhere)}
    unique = sorted((w for w in words if w[:4] not in others), key=lambda w: (-len(w), w))
    assert unique, f"no distinctive word in {text!r}"
    return unique[0]


def test_find_a_story_by_its_third_segment_share_it_read_it_anonymously_and_revoke(
    api, problem
):
    writer = api.register()
    created = api.create_story(writer, genre="mystery", title="The Harbour", characters=["Mara"])
    assert created.status_code == 201, created.text
    story_id = created.json()["id"]
    for _ in range(2):
        continued = api.http.post(
            f"/v1/stories/{story_id}/continue", json={}, headers=writer.headers
        )
        assert continued.status_code == 201, continued.text
    story = api.http.get(f"/v1/stories/{story_id}", headers=writer.headers).json()
    first, second, third = story["segments"]
    word = distinctive_word(
        third["text"], " ".join([first["text"], second["text"], "The Harbour mystery Mara"])
    )

    found = api.http.get("/v1/stories", params={"q": word}, headers=writer.headers)
    assert found.status_code == 200, found.text
    [hit] = found.json()["items"]
    assert hit["id"] == story_id and hit["search"]["segment_id"] == third["id"]
    assert f"«{word}»" in hit["search"]["snippet"].lower()
    # Filters combine with the query.
    assert api.http.get(
        "/v1/stories", params={"q": word, "is_complete": "true"}, headers=writer.headers
    ).json()["items"] == []
    stats = api.http.get("/v1/stories/stats", headers=writer.headers).json()
    assert (stats["total"], stats["average_segments"]) == (1, 3)

    shared = api.http.post(f"/v1/stories/{story_id}/share", headers=writer.headers)
    assert shared.status_code == 201, shared.text
    link = shared.json()["url"]
    assert link.endswith(f"/v1/shared/{shared.json()['token']}") and link.startswith("http")

    # No Authorization header: the link is the credential.
    views = [api.http.get(link) for _ in range(2)]
    assert [v.status_code for v in views] == [200, 200], views[-1].text
    read = views[-1].json()
    assert read["view_count"] == 2 and read["title"] == "The Harbour"
    assert [s["text"] for s in read["segments"]] == [first["text"], second["text"], third["text"]]
    assert writer.email not in views[-1].text and story_id not in views[-1].text

    revoked = api.http.delete(f"/v1/stories/{story_id}/share", headers=writer.headers)
    assert revoked.status_code == 204
    problem(api.http.get(link), 404)
