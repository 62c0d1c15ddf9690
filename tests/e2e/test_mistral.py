"""The whole platform on the Mistral provider: the real `mistralai` SDK inside
the generation service, talking to a local server that speaks Mistral's
chat-completions wire format."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fabula_common.testing import free_port

pytestmark = pytest.mark.e2e

FAKE = Path(__file__).resolve().parent.parent / "fakes" / "fake_mistral.py"


@pytest.fixture
def fake_mistral():
    port = free_port()
    process = subprocess.Popen([sys.executable, str(FAKE), "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while True:
        try:
            httpx.post(f"{url}/_fake/reset", timeout=1)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "fake Mistral server did not start"
            time.sleep(0.05)
    yield url
    process.terminate()
    process.wait(timeout=10)


def test_stories_written_by_mistral(fake_mistral, start_private_stack, problem):
    api = start_private_stack(MISTRAL_API_KEY="test-key", MISTRAL_SERVER_URL=fake_mistral)
    writer = api.register()

    created = api.create_story(writer, genre="mystery", characters=["Mara"])
    assert created.status_code == 201, created.text
    story = created.json()
    assert story["title"] == "The Lantern Keeper"  # parsed from the model's "Title:" line
    opening = story["segments"][0]
    assert opening["generated_by"] == {"provider": "mistral", "model": "mistral-small-latest",
                                       "is_language_model": True}
    assert "Mara lit the last lantern" in opening["text"] and "Title:" not in opening["text"]

    with api.http.stream("POST", f"/v1/stories/{story['id']}/continue", json={},
                         headers={**writer.headers, "Accept": "text/event-stream"}) as stream:
        body = stream.read().decode()
    assert body.count("event: token") > 1 and body.count("event: segment") == 1

    # The provider rate-limits, then fails: 503 problems, and the reservations are given back.
    limited = api.http.post(f"/v1/stories/{story['id']}/continue",
                            json={"direction": "fake-mistral:rate-limit"}, headers=writer.headers)
    assert "rate-limiting" in problem(limited, 503, "model-unavailable")["detail"]
    failed = api.http.post(f"/v1/stories/{story['id']}/continue",
                           json={"direction": "fake-mistral:server-error"}, headers=writer.headers)
    problem(failed, 503, "model-unavailable")

    # What the model did write was billed; the failures cost no generation.
    api.wait_for(lambda: api.usage(writer)["generations_used"] == 2)
    for _ in range(3):
        response = api.http.post(f"/v1/stories/{story['id']}/continue", json={}, headers=writer.headers)
        assert response.status_code == 201, response.text
    problem(api.http.post(f"/v1/stories/{story['id']}/continue", json={}, headers=writer.headers), 402)
    assert api.usage(writer)["generations_used"] == 5
    # Real token counts priced from the table, once the usage events are settled.
    api.wait_for(lambda: float(api.usage(writer)["cost_used_usd"]) > 0)


def test_the_model_is_sent_memory_lore_and_authors_note(fake_mistral, start_private_stack):
    api = start_private_stack(MISTRAL_API_KEY="test-key", MISTRAL_SERVER_URL=fake_mistral)
    writer = api.register()
    story = api.create_story(writer, genre="mystery", characters=["Mara"]).json()
    sid = story["id"]
    patched = api.http.patch(
        f"/v1/stories/{sid}",
        json={"memory": "Mara cannot swim.", "authors_note": "Keep it eerie."},
        headers=writer.headers,
    )
    assert patched.status_code == 200, patched.text
    for keys, text in ((["lantern"], "Lanterns here burn blue."), (["zeppelin"], "No airships.")):
        created = api.http.post(
            f"/v1/stories/{sid}/lore", json={"keys": keys, "text": text}, headers=writer.headers
        )
        assert created.status_code == 201, created.text
    httpx.post(f"{fake_mistral}/_fake/reset", timeout=5)

    shown = api.http.get(f"/v1/stories/{sid}/context", headers=writer.headers).json()
    continued = api.http.post(f"/v1/stories/{sid}/continue", json={}, headers=writer.headers)
    assert continued.status_code == 201, continued.text

    sent = httpx.get(f"{fake_mistral}/_fake/requests", timeout=5).json()["requests"]
    prompt = "\n".join(message["content"] for message in sent[-1]["messages"])
    # The opening mentions lanterns, not zeppelins: only the matching entry goes.
    assert "Mara cannot swim." in prompt and "Keep it eerie." in prompt
    assert "Lanterns here burn blue." in prompt and "No airships." not in prompt
    # What GET /context showed is what the model was sent.
    assert [m["content"] for m in shown["prompt"]] == [m["content"] for m in sent[-1]["messages"]]
