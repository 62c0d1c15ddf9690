"""Long-form work across real processes (the launcher's: gateway, stories,
generation, its job worker, billing), real Postgres and NATS: a project, a
job watched over server-sent events to its narrative, a revision, exports, a
cancel mid-stage, and a worker killed mid-job whose job still finishes."""

from __future__ import annotations

import json
import os
import signal
import time

import httpx
import pytest

pytestmark = pytest.mark.e2e

WORKER = "generation.worker"


def sse_events(http: httpx.Client, path: str, headers: dict, timeout: float = 60) -> list[dict]:
    """Every event of a job's stream, to its end: (id, event, data)."""
    events: list[dict] = []
    current: dict = {}
    with http.stream(
        "GET", path, headers={**headers, "Accept": "text/event-stream"}, timeout=timeout
    ) as stream:
        assert stream.status_code == 200, stream.read()
        for line in stream.iter_lines():
            if not line:
                if "event" in current:
                    events.append(current)
                current = {}
            elif line.startswith("id: "):
                current["id"] = int(line[4:])
            elif line.startswith("event: "):
                current["event"] = line[7:]
            elif line.startswith("data: "):
                current["data"] = json.loads(line[6:])
    return events


def project_of(api, writer) -> dict:
    created = api.http.post(
        "/v1/projects",
        json={"name": "Harbour tales", "default_genre": "mystery", "world_notes": "Fog every noon."},
        headers=writer.headers,
    )
    assert created.status_code == 201, created.text
    return created.json()


def submit(api, writer, project_id: str, **brief) -> dict:
    body = {
        "production_type": "short_story",
        "premise": "A ferry arrives at dawn with nobody aboard.",
        "characters": ["Mara"],
        "target_words": 1500,
        **brief,
    }
    response = api.http.post(f"/v1/projects/{project_id}/jobs", json=body, headers=writer.headers)
    assert response.status_code == 202, response.text
    return response.json()


def job(api, writer, job_id: str) -> dict:
    response = api.http.get(f"/v1/jobs/{job_id}", headers=writer.headers)
    assert response.status_code == 200, response.text
    return response.json()


def stage_calls(api, writer, job_id: str) -> dict[str, int]:
    """How many model calls each of the job's stages was billed for."""
    calls: dict[str, int] = {}
    cursor = None
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = api.http.get("/v1/usage/logs", params=params, headers=writer.headers).json()
        for entry in page["items"]:
            attributes = entry.get("attributes") or {}
            if attributes.get("job_id") == job_id:
                calls[attributes["stage"]] = calls.get(attributes["stage"], 0) + 1
        cursor = page.get("next_cursor")
        if not cursor:
            return calls


def test_a_job_writes_a_narrative_that_is_revised_and_exported(api, problem):
    writer = api.register()
    project = project_of(api, writer)

    queued = submit(api, writer, project["id"])
    assert queued["status"] == "queued" and queued["genre"] == "mystery"  # the project's default
    assert queued["stages"][0] == "outline" and queued["stages"][-1] == "measure"
    assert queued["estimated_generations"] == len(queued["stages"]) - 1  # measure calls no model

    events = sse_events(api.http, f"/v1/jobs/{queued['id']}/events", writer.headers)
    kinds = [event["event"] for event in events]
    assert kinds[0] == "queued" and kinds[-1] == "done"
    assert {"stage_started", "stage_finished", "text"} <= set(kinds)
    assert [event["id"] for event in events] == sorted(event["id"] for event in events)
    # Reconnecting with Last-Event-ID gives exactly what came after.
    middle = events[len(events) // 2]["id"]
    again = sse_events(
        api.http, f"/v1/jobs/{queued['id']}/events", {**writer.headers, "Last-Event-ID": str(middle)}
    )
    assert [event["id"] for event in again] == [e["id"] for e in events if e["id"] > middle]

    done = job(api, writer, queued["id"])
    assert done["status"] == "completed" and done["progress_percentage"] == 100
    assert done["completed_stages"] == done["stages"]

    # The narrative arrives in the project through JobCompleted.
    narratives = api.wait_for(
        lambda: api.http.get(
            f"/v1/projects/{project['id']}/narratives", headers=writer.headers
        ).json()["items"]
    )
    [first] = narratives
    read = api.http.get(f"/v1/narratives/{first['id']}", headers=writer.headers).json()
    assert read["version"] == 1 and read["job_id"] == queued["id"]
    assert read["word_count"] == len(read["text"].split()) > 500
    metrics = read["quality_metrics"]
    assert metrics["word_count"] == read["word_count"]
    assert 0 < metrics["length_accuracy"] <= 1 and 0 <= read["overall_quality_score"] <= 100
    assert {"readability", "lexical_diversity", "repetition", "dialogue_share"} <= set(metrics)
    project_now = api.http.get(f"/v1/projects/{project['id']}", headers=writer.headers).json()
    assert (project_now["narrative_count"], project_now["total_word_count"]) == (1, read["word_count"])

    # Revision: version 2, with the first as its parent.
    revising = api.http.post(
        f"/v1/narratives/{first['id']}/revise",
        json={"instructions": "Make the ending quieter."},
        headers=writer.headers,
    )
    assert revising.status_code == 202, revising.text
    revision_events = sse_events(api.http, f"/v1/jobs/{revising.json()['id']}/events", writer.headers)
    assert revision_events[-1]["event"] == "done"
    versions = api.wait_for(
        lambda: (
            v := api.http.get(f"/v1/narratives/{first['id']}/versions", headers=writer.headers)
            .json()["versions"]
        )
        and len(v) == 2
        and v
    )
    assert [(v["version"], v["parent_narrative_id"]) for v in versions] == [
        (1, None),
        (2, first["id"]),
    ]

    for narrative in versions:
        for fmt, content_type in (("md", "text/markdown"), ("epub", "application/epub+zip")):
            exported = api.http.get(
                f"/v1/narratives/{narrative['id']}/export",
                params={"format": fmt},
                headers=writer.headers,
            )
            assert exported.status_code == 200, exported.text
            assert exported.headers["content-type"].startswith(content_type)
            assert f".{fmt}" in exported.headers["content-disposition"]
    counted = api.http.get(f"/v1/narratives/{first['id']}", headers=writer.headers).json()
    assert counted["download_count"] == 2 and sorted(counted["export_formats"]) == ["epub", "md"]
    # Jobs are cost only: no generation of the plan was used.
    assert api.usage(writer)["generations_used"] == 0
    # Another user sees none of it.
    stranger = api.register()
    for path in (f"/v1/projects/{project['id']}", f"/v1/jobs/{queued['id']}",
                 f"/v1/narratives/{first['id']}"):
        problem(api.http.get(path, headers=stranger.headers), 404)


def test_a_cancel_stops_the_model_mid_stage_and_a_killed_worker_s_job_finishes(
    start_private_stack,
):
    # The offline writer slowed down (20 ms a word) so a stage takes seconds,
    # and a short lease so a dead worker's job is taken over quickly.
    api = start_private_stack(
        GENERATION_OFFLINE_TOKEN_DELAY_MS="20", GENERATION_JOBS_LEASE_SECONDS="3"
    )
    writer = api.register()
    project = project_of(api, writer)

    # Cancel mid-stage: the job ends within 2 s, nothing more is written.
    cancelling = submit(api, writer, project["id"])
    api.wait_for(lambda: job(api, writer, cancelling["id"])["current_stage"] == "draft-1", 60)
    asked = time.monotonic()
    cancelled = api.http.post(f"/v1/jobs/{cancelling['id']}/cancel", headers=writer.headers)
    assert cancelled.status_code == 200, cancelled.text
    api.wait_for(lambda: job(api, writer, cancelling["id"])["status"] == "cancelled", 5, 0.05)
    assert time.monotonic() - asked < 2.5
    stopped = job(api, writer, cancelling["id"])
    assert stopped["can_resume"] and "draft-1" not in stopped["completed_stages"]
    tokens = stopped["tokens_used"]
    time.sleep(1.5)
    assert job(api, writer, cancelling["id"])["tokens_used"] == tokens  # the model stopped
    assert float(stopped["actual_cost_usd"]) <= float(stopped["estimated_cost_usd"])

    # kill -9 of the worker mid-job: the restarted worker takes it over once
    # the lease has run out, and no completed stage is paid twice.
    running = submit(api, writer, project["id"])
    api.wait_for(lambda: job(api, writer, running["id"])["current_stage"] == "draft-1", 60)
    worker = api.stack.children[WORKER]
    os.kill(worker, signal.SIGKILL)
    api.stack.wait_restarted(WORKER, worker, timeout=15)
    finished = api.wait_for(
        lambda: (j := job(api, writer, running["id"]))["status"] in {"completed", "failed"} and j,
        timeout=120,
        interval=0.5,
    )
    assert finished["status"] == "completed", finished
    api.wait_for(lambda: stage_calls(api, writer, running["id"]).get("revise") == 1, 20)
    calls = stage_calls(api, writer, running["id"])
    # Only the stage in flight at the kill may have a second (its abandoned) call.
    assert calls["outline"] == 1 and calls["revise"] == 1, calls
    assert all(count <= 2 for count in calls.values()), calls
    narratives = api.wait_for(
        lambda: api.http.get(
            f"/v1/projects/{project['id']}/narratives", headers=writer.headers
        ).json()["items"]
    )
    assert [n["job_id"] for n in narratives] == [running["id"]]
