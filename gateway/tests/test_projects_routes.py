"""Projects, jobs and narratives routes against fakes of stories'
ProjectsService and generation's JobsService (fakes_projects.py)."""

from __future__ import annotations

import json

import grpc
import pytest
from fabula.generation.v1 import jobs_pb2
from fabula_gateway.projects import jobs as job_routes

from .conftest import GRPC_DEADLINE_SECONDS
from .fakes import FakeBackends
from .fakes_projects import JOB_ID, NARRATIVE_ID, NARRATIVE_TEXT, PROJECT_ID

BRIEF = {"premise": "A ferry arrives at dawn with nobody aboard.", "characters": ["Mara"]}


def job_events(text: str) -> list[dict]:
    """Each event's fields (`id`, `event`, `data` parsed), comments dropped."""
    assert text.endswith("\n\n")
    events = []
    for block in text.removesuffix("\n\n").split("\n\n"):
        lines = [line for line in block.split("\n") if not line.startswith(":")]
        if not lines:
            continue
        fields = dict(line.split(": ", 1) for line in lines)
        fields["data"] = json.loads(fields["data"])
        events.append(fields)
    return events


# --- Projects ------------------------------------------------------------------------


async def test_a_project_is_created_with_its_location(api, backends: FakeBackends, auth, user_id):
    response = await api.post(
        "/v1/projects",
        json={"name": " Harbour tales ", "default_production_type": "novella"},
        headers=auth,
    )

    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/v1/projects/{PROJECT_ID}"
    body = response.json()
    assert body["name"] == "Harbour tales"
    assert body["default_production_type"] == "novella"
    assert (body["narrative_count"], body["total_word_count"], body["total_cost_usd"]) == (
        0, 0, "0",
    )
    sent = backends.only("CreateProject")
    assert sent.request.user_id == user_id
    assert sent.request.default_production_type == jobs_pb2.PRODUCTION_TYPE_NOVELLA
    assert GRPC_DEADLINE_SECONDS - 1.5 < sent.time_remaining < GRPC_DEADLINE_SECONDS + 0.5


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "x" * 201},
        {"name": "ok", "description": "x" * 4001},
        {"name": "ok", "default_production_type": "saga"},
        {"name": "ok", "colour": "blue"},
    ],
)
async def test_a_bad_project_is_refused_before_stories(api, backends, auth, problem, body):
    problem(await api.post("/v1/projects", json=body, headers=auth), 422)
    assert not backends.calls or all(c.method == "Authenticate" for c in backends.calls)


async def test_projects_are_read_listed_changed_and_deleted(api, backends, auth):
    got = await api.get(f"/v1/projects/{PROJECT_ID}", headers=auth)
    assert got.status_code == 200
    assert got.json()["total_cost_usd"] == "0.025"
    assert got.json()["narrative_count"] == 2

    page = (await api.get("/v1/projects?limit=5&cursor=abc", headers=auth)).json()
    assert page["next_cursor"] == "next-page" and len(page["items"]) == 1
    listed = backends.only("ListProjects").request
    assert (listed.limit, listed.cursor) == (5, "abc")

    changed = await api.patch(
        f"/v1/projects/{PROJECT_ID}",
        json={"name": "Island tales", "default_production_type": None},
        headers=auth,
    )
    assert changed.status_code == 200
    update = backends.only("UpdateProject").request
    assert list(update.fields) == ["default_production_type", "name"]
    assert update.default_production_type == jobs_pb2.PRODUCTION_TYPE_UNSPECIFIED

    deleted = await api.delete(f"/v1/projects/{PROJECT_ID}", headers=auth)
    assert deleted.status_code == 204


async def test_an_unknown_project_is_404(api, backends: FakeBackends, auth, problem):
    problem(await api.get("/v1/projects/not-a-uuid", headers=auth), 404)
    backends.fail("GetProject", grpc.StatusCode.NOT_FOUND, "project not found")
    problem(await api.get(f"/v1/projects/{PROJECT_ID}", headers=auth), 404)
    # Submitting into someone else's project reserves nothing.
    problem(await api.post(f"/v1/projects/{PROJECT_ID}/jobs", json=BRIEF, headers=auth), 404)
    assert not [c for c in backends.calls if c.method == "SubmitJob"]


# --- Jobs ----------------------------------------------------------------------------


async def test_a_brief_is_queued_with_the_projects_defaults(
    api, backends: FakeBackends, auth, user_id
):
    response = await api.post(
        f"/v1/projects/{PROJECT_ID}/jobs",
        json=BRIEF,
        headers={**auth, "Idempotency-Key": "brief-1"},
    )

    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/v1/jobs/{JOB_ID}"
    job = response.json()
    assert job["status"] == "queued"
    assert (job["estimated_cost_usd"], job["estimated_generations"]) == ("0.04", 6)
    assert job["stages"][0] == "outline" and job["completed_stages"] == []
    assert job["started_at"] is None and job["error_message"] is None
    sent = backends.only("SubmitJob").request
    assert (sent.user_id, sent.project_id, sent.idempotency_key) == (user_id, PROJECT_ID, "brief-1")
    # From the project: production type, genre and world notes.
    assert sent.brief.production_type == jobs_pb2.PRODUCTION_TYPE_SHORT_STORY
    assert sent.brief.genre == "mystery"
    assert sent.brief.world_notes == "The ferry runs at dawn only."
    assert sent.brief.premise == BRIEF["premise"]
    assert not sent.HasField("revision")


async def test_the_brief_overrides_the_projects_defaults(api, backends: FakeBackends, auth):
    body = {**BRIEF, "production_type": "scene", "genre": "horror", "target_words": 900}
    response = await api.post(f"/v1/projects/{PROJECT_ID}/jobs", json=body, headers=auth)
    assert response.status_code == 202
    sent = backends.only("SubmitJob").request.brief
    assert (sent.production_type, sent.genre, sent.target_words) == (
        jobs_pb2.PRODUCTION_TYPE_SCENE, "horror", 900,
    )


@pytest.mark.parametrize(
    ("code", "reason", "status", "slug"),
    [
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "quota-exceeded", 402, "quota-exceeded"),
        (grpc.StatusCode.FAILED_PRECONDITION, "too-many-running-jobs", 409,
         "too-many-running-jobs"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "job-budget-exceeded", 402, "job-budget-exceeded"),
    ],
)
async def test_refused_submissions_say_why(
    api, backends: FakeBackends, auth, problem, code, reason, status, slug
):
    backends.fail("SubmitJob", code, "refused for a reason", reason)
    body = problem(await api.post(f"/v1/projects/{PROJECT_ID}/jobs", json=BRIEF, headers=auth), status)
    assert body["type"].endswith("/" + slug)
    assert body["detail"] == "refused for a reason"


async def test_jobs_are_read_listed_cancelled_and_retried(api, backends: FakeBackends, auth):
    got = (await api.get(f"/v1/jobs/{JOB_ID}", headers=auth)).json()
    assert (got["status"], got["current_stage"]) == ("running", "draft-1")

    page = await api.get(
        f"/v1/jobs?project_id={PROJECT_ID}&status=failed&limit=3", headers=auth
    )
    assert page.status_code == 200 and page.json()["next_cursor"] is None
    listed = backends.only("ListJobs").request
    assert (listed.project_id, listed.status, listed.limit) == (
        PROJECT_ID, jobs_pb2.JOB_STATUS_FAILED, 3,
    )

    cancelled = (await api.post(f"/v1/jobs/{JOB_ID}/cancel", headers=auth)).json()
    assert (cancelled["status"], cancelled["can_resume"]) == ("cancelled", True)

    retried = await api.post(
        f"/v1/jobs/{JOB_ID}/retry", json={"from_stage": "draft-2"}, headers=auth
    )
    assert retried.json()["retry_count"] == 1
    assert backends.only("RetryJob").request.from_stage == "draft-2"
    assert (await api.post(f"/v1/jobs/{JOB_ID}/retry", headers=auth)).status_code == 200


async def test_a_job_that_cannot_be_retried_is_409(api, backends: FakeBackends, auth, problem):
    backends.fail("RetryJob", grpc.StatusCode.FAILED_PRECONDITION, "the job is running", "conflict")
    problem(await api.post(f"/v1/jobs/{JOB_ID}/retry", headers=auth), 409)


# --- Events -------------------------------------------------------------------------


async def test_events_stream_with_ids_until_the_terminal_event(api, backends, auth, user_id):
    response = await api.get(f"/v1/jobs/{JOB_ID}/events", headers=auth)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = job_events(response.text)
    assert [e["event"] for e in events] == [
        "queued", "stage_started", "text", "stage_finished", "progress", "done",
    ]
    assert [e["id"] for e in events] == ["1", "2", "3", "4", "5", "6"]
    assert events[2]["data"]["text"] == "Title: The Silent Ferry"
    assert events[1]["data"]["stage"] == "outline"
    assert events[-1]["data"]["job"]["status"] == "completed"
    watch = backends.only("WatchJob").request
    assert (watch.user_id, watch.job_id, watch.after_sequence) == (user_id, JOB_ID, 0)


async def test_a_reconnect_with_last_event_id_misses_nothing_and_repeats_nothing(
    api, backends: FakeBackends, auth
):
    response = await api.get(
        f"/v1/jobs/{JOB_ID}/events", headers={**auth, "Last-Event-ID": "3"}
    )
    assert [e["id"] for e in job_events(response.text)] == ["4", "5", "6"]
    assert backends.only("WatchJob").request.after_sequence == 3

    # ?after= for clients that cannot set headers; Last-Event-ID wins over it.
    response = await api.get(
        f"/v1/jobs/{JOB_ID}/events?after=5", headers={**auth, "Last-Event-ID": "4"}
    )
    assert [e["id"] for e in job_events(response.text)] == ["5", "6"]
    response = await api.get(f"/v1/jobs/{JOB_ID}/events?after=5", headers=auth)
    assert [e["id"] for e in job_events(response.text)] == ["6"]


async def test_a_quiet_stream_is_kept_alive(api, backends: FakeBackends, auth, monkeypatch):
    monkeypatch.setattr(job_routes, "KEEP_ALIVE_SECONDS", 0.05)
    backends.jobs.quiet_seconds = 0.2
    response = await api.get(f"/v1/jobs/{JOB_ID}/events?after=4", headers=auth)
    assert ": keep-alive\n\n" in response.text
    assert [e["id"] for e in job_events(response.text)] == ["5", "6"]


async def test_an_unknown_job_is_a_404_before_any_event(api, backends: FakeBackends, auth, problem):
    backends.fail("GetJob", grpc.StatusCode.NOT_FOUND, "job not found")
    problem(await api.get(f"/v1/jobs/{JOB_ID}/events", headers=auth), 404)
    problem(await api.get("/v1/jobs/nope/events", headers=auth), 404)
    assert not [c for c in backends.calls if c.method == "WatchJob"]


async def test_a_failure_mid_stream_is_an_error_event(api, backends: FakeBackends, auth):
    backends.fail("WatchJob", grpc.StatusCode.UNAVAILABLE, "down")
    response = await api.get(f"/v1/jobs/{JOB_ID}/events", headers=auth)
    assert response.status_code == 200
    assert "event: error" in response.text
    assert '"status":503' in response.text


# --- Narratives ------------------------------------------------------------------------


async def test_narratives_are_listed_read_with_a_view_and_versioned(api, backends, auth):
    page = (await api.get(f"/v1/projects/{PROJECT_ID}/narratives", headers=auth)).json()
    [item] = page["items"]
    assert "text" not in item
    assert (item["version"], item["parent_narrative_id"], item["cost_usd"]) == (1, None, "0.0125")

    narrative = (await api.get(f"/v1/narratives/{NARRATIVE_ID}", headers=auth)).json()
    assert narrative["text"] == NARRATIVE_TEXT
    assert narrative["quality_metrics"] == {"readability": 64.5}
    assert backends.only("GetNarrative").request.count_view

    versions = (await api.get(f"/v1/narratives/{NARRATIVE_ID}/versions", headers=auth)).json()
    assert [v["version"] for v in versions["versions"]] == [1, 2]
    assert versions["versions"][1]["parent_narrative_id"] == NARRATIVE_ID


async def test_a_revision_sends_the_narratives_text_to_generation(
    api, backends: FakeBackends, auth
):
    response = await api.post(
        f"/v1/narratives/{NARRATIVE_ID}/revise",
        json={"instructions": "Make the ending less abrupt.", "locked_sections": [0]},
        headers=auth,
    )

    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/v1/jobs/{JOB_ID}"
    assert response.json()["parent_narrative_id"] == NARRATIVE_ID
    # Reading it to revise it is no view.
    assert not backends.only("GetNarrative").request.count_view
    sent = backends.only("SubmitJob").request
    assert sent.project_id == PROJECT_ID
    assert sent.brief.production_type == jobs_pb2.PRODUCTION_TYPE_SHORT_STORY
    assert sent.brief.world_notes == "The ferry runs at dawn only."
    assert sent.revision.parent_narrative_id == NARRATIVE_ID
    assert sent.revision.parent_text == NARRATIVE_TEXT
    assert sent.revision.parent_title == "The Silent Ferry"
    assert sent.revision.instructions == "Make the ending less abrupt."
    assert list(sent.revision.locked_sections) == [0]


async def test_a_revision_needs_instructions(api, backends, auth, problem):
    problem(await api.post(f"/v1/narratives/{NARRATIVE_ID}/revise", json={}, headers=auth), 422)
    problem(
        await api.post(
            f"/v1/narratives/{NARRATIVE_ID}/revise",
            json={"instructions": "x", "locked_sections": [-1]},
            headers=auth,
        ),
        422,
    )


async def test_a_narrative_is_exported_as_a_named_attachment(api, backends, auth):
    response = await api.get(f"/v1/narratives/{NARRATIVE_ID}/export?format=epub", headers=auth)

    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith(
        'attachment; filename="the-silent-ferry.md"'
    )
    assert response.text.startswith("# The Silent Ferry")
    sent = backends.only("ExportNarrative").request
    assert sent.format == 3  # EXPORT_FORMAT_EPUB
    assert sent.author_name
