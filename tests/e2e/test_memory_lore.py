"""Memory and lore over HTTP against real processes: set memory and a lore
entry, and see them in /context, the entry only once its key appears."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e

# A word the offline generator never writes on its own; it does write a
# direction's words into the segment it is told to write.
KEY = "astrolabe"


def test_context_shows_memory_always_and_lore_only_once_its_key_appears(api, problem):
    writer = api.register()
    created = api.create_story(writer, genre="mystery", characters=["Mara"])
    assert created.status_code == 201, created.text
    story = created.json()
    base = f"/v1/stories/{story['id']}"
    assert KEY not in story["segments"][0]["text"].lower()

    patched = api.http.patch(
        base, json={"memory": "Mara cannot swim.", "authors_note": "Keep it eerie."},
        headers=writer.headers,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["memory"] == "Mara cannot swim."
    keyed = api.http.post(
        f"{base}/lore", json={"keys": [KEY], "text": "The astrolabe points at lost things."},
        headers=writer.headers,
    )
    assert keyed.status_code == 201, keyed.text
    assert api.http.get(keyed.headers["location"], headers=writer.headers).json() == keyed.json()
    constant = api.http.post(
        f"{base}/lore", json={"constant": True, "text": "The island has one lighthouse."},
        headers=writer.headers,
    )
    assert constant.status_code == 201, constant.text

    before = api.http.get(f"{base}/context", headers=writer.headers)
    assert before.status_code == 200, before.text
    context = before.json()
    assert context["memory"] == "Mara cannot swim."
    assert [hit["entry_id"] for hit in context["lore"]] == [constant.json()["id"]]
    assert [s["position"] for s in context["segments"]] == [1]

    continued = api.http.post(
        f"{base}/continue", json={"direction": f"Mara finds the {KEY}"}, headers=writer.headers
    )
    assert continued.status_code == 201, continued.text
    assert KEY in continued.json()["text"].lower()

    after = api.http.get(f"{base}/context", headers=writer.headers).json()
    assert [(hit["entry_id"], hit["matched"]) for hit in after["lore"]] == [
        (constant.json()["id"], "constant"), (keyed.json()["id"], KEY)
    ]
    assert [s["position"] for s in after["segments"]] == [1, 2]
    assert 0 < after["budget"]["used_tokens"] <= after["budget"]["max_tokens"]
    user_message = after["prompt"][-1]["content"]
    for part in ("Mara cannot swim.", "The astrolabe points at lost things.",
                 "[Author's note: Keep it eerie.]"):
        assert part in user_message

    # Someone else sees none of it.
    intruder = api.register()
    problem(api.http.get(f"{base}/context", headers=intruder.headers), 404)
    problem(api.http.get(keyed.headers["location"], headers=intruder.headers), 404)
