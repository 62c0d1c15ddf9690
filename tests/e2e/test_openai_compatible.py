"""The whole platform on an OpenAI-compatible server (as Ollama, vLLM or
llama.cpp's server would be): the official `openai` SDK inside the generation
service and its job worker, talking to a local server that speaks OpenAI's
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

FAKE = Path(__file__).resolve().parent.parent / "fakes" / "fake_openai.py"
MODEL = "llama3.2"


@pytest.fixture
def fake_openai():
    port = free_port()
    process = subprocess.Popen([sys.executable, str(FAKE), "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while True:
        try:
            httpx.post(f"{url}/_fake/reset", timeout=1)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "fake OpenAI-compatible server did not start"
            time.sleep(0.05)
    yield url
    process.terminate()
    process.wait(timeout=10)


def test_stories_written_by_an_openai_compatible_server(fake_openai, start_private_stack, problem):
    # No key: local servers need none.
    api = start_private_stack(
        GENERATION_PROVIDER="openai", OPENAI_BASE_URL=f"{fake_openai}/v1", OPENAI_MODEL=MODEL
    )
    writer = api.register()

    created = api.create_story(writer, genre="mystery", characters=["Mara"])
    assert created.status_code == 201, created.text
    story = created.json()
    assert story["title"] == "The Lantern Keeper"  # parsed from the model's "Title:" line
    opening = story["segments"][0]
    assert opening["generated_by"] == {"provider": "openai", "model": MODEL,
                                       "is_language_model": True}
    assert "Mara lit the last lantern" in opening["text"] and "Title:" not in opening["text"]

    with api.http.stream("POST", f"/v1/stories/{story['id']}/continue", json={},
                         headers={**writer.headers, "Accept": "text/event-stream"}) as stream:
        body = stream.read().decode()
    assert body.count("event: token") > 1 and body.count("event: segment") == 1
    sent = httpx.get(f"{fake_openai}/_fake/requests").json()["requests"]
    assert sent[-1]["model"] == MODEL and sent[-1]["stream_options"] == {"include_usage": True}

    # The server rate-limits, then fails: 503 problems, and the reservations are given back.
    limited = api.http.post(f"/v1/stories/{story['id']}/continue",
                            json={"direction": "fake-openai:rate-limit"}, headers=writer.headers)
    assert "rate-limiting" in problem(limited, 503, "model-unavailable")["detail"]
    failed = api.http.post(f"/v1/stories/{story['id']}/continue",
                           json={"direction": "fake-openai:server-error"}, headers=writer.headers)
    problem(failed, 503, "model-unavailable")

    # What the model wrote was billed (a model missing from the price table
    # at the fallback price); the failures cost no generation.
    api.wait_for(lambda: api.usage(writer)["generations_used"] == 2)
    api.wait_for(lambda: float(api.usage(writer)["cost_used_usd"]) > 0)
