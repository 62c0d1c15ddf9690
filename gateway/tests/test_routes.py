"""Every route's happy path through the real app, against fakes of the
services' gRPC contracts: the REST shapes a client relies on, and the gRPC
requests (with request id and deadline) a service relies on."""

from __future__ import annotations

import grpc
import pytest
from fabula_common.errors import QuotaExceeded

from .conftest import GENERATION_DEADLINE_SECONDS, GRPC_DEADLINE_SECONDS
from .fakes import CONTINUATION_PIECES, OPENING, Failure, FakeBackends
from .sse import sse_events

STORY_ID = "6a1f0c2e-9d8b-4e7a-8c6d-5b4a3f2e1d0c"
PROBLEM_JSON = "application/problem+json"
BASE = "https://fabula.dev/problems/"
SEGMENT_KEYS = {
    "id",
    "position",
    "text",
    "kind",
    "created_at",
    "generated_by",
    "parent_id",
    "alternative_count",
    "alternative_number",
    "edited",
    "word_count",
}
SUMMARY_KEYS = {
    "id",
    "title",
    "genre",
    "characters",
    "opening_line",
    "is_complete",
    "segment_count",
    "created_at",
    "updated_at",
    "memory",
    "authors_note",
    "is_favorite",
    "search",
    "head_segment_id",
}
TOKEN_KEYS = {"access_token", "refresh_token", "token_type", "expires_in", "user"}


def assert_problem(response, status: int, problem_type: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert (body["type"], body["status"]) == (BASE + problem_type, status)
    return body


# ------------------------------------------------------------ users


async def test_register_answers_201_with_the_token_pair(api, backends: FakeBackends):
    response = await api.post(
        "/v1/auth/register",
        json={"email": "ada@example.com", "password": "correct horse", "full_name": " Ada "},
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == TOKEN_KEYS
    assert body["access_token"] == "access-token-from-users"
    assert body["refresh_token"] == "refresh-token-from-users"
    assert (body["token_type"], body["expires_in"]) == ("bearer", 900)
    assert body["user"] == {
        "id": backends.users.user_id,
        "email": "ada@example.com",
        "full_name": "Ada",
    }
    request = backends.only("Register").request
    assert (request.email, request.password, request.full_name) == (
        "ada@example.com",
        "correct horse",
        "Ada",
    )


async def test_register_passes_the_idempotency_key_on(api, backends: FakeBackends):
    body = {"email": "ada@example.com", "password": "correct horse"}
    with_key = await api.post(
        "/v1/auth/register", json=body, headers={"Idempotency-Key": "4f1c-retry-me"}
    )
    without = await api.post("/v1/auth/register", json=body)

    assert (with_key.status_code, without.status_code) == (201, 201)
    keys = [call.request.idempotency_key for call in backends.calls if call.method == "Register"]
    assert keys == ["4f1c-retry-me", ""]


@pytest.mark.parametrize("key", ["", "k" * 256])
async def test_an_empty_or_overlong_idempotency_key_is_a_422(api, backends: FakeBackends, key):
    response = await api.post(
        "/v1/auth/register",
        json={"email": "ada@example.com", "password": "correct horse"},
        headers={"Idempotency-Key": key},
    )

    body = assert_problem(response, 422, "validation-error")
    assert [error["header"] for error in body["errors"]] == ["Idempotency-Key"]
    assert not [call for call in backends.calls if call.method == "Register"]


async def test_a_reused_idempotency_key_is_a_422(api, backends: FakeBackends):
    backends.fail(
        "Register",
        grpc.StatusCode.INVALID_ARGUMENT,
        "idempotency_key: already used for a different registration request",
        reason="idempotency-key-reused",
    )
    response = await api.post(
        "/v1/auth/register",
        json={"email": "ada@example.com", "password": "correct horse"},
        headers={"Idempotency-Key": "used-before"},
    )

    body = assert_problem(response, 422, "idempotency-key-reused")
    assert body["detail"].startswith("idempotency_key:")


async def test_login_and_refresh_pass_the_credentials_on(api, backends: FakeBackends):
    login = await api.post(
        "/v1/auth/login", json={"email": "ada@example.com", "password": "correct horse"}
    )
    refresh = await api.post("/v1/auth/refresh", json={"refresh_token": "rt-1"})

    assert (login.status_code, refresh.status_code) == (200, 200)
    assert set(login.json()) == set(refresh.json()) == TOKEN_KEYS
    assert login.json()["user"]["full_name"] is None  # empty in gRPC is null in JSON
    sent = backends.only("Login").request
    assert (sent.email, sent.password) == ("ada@example.com", "correct horse")
    assert backends.only("Refresh").request.refresh_token == "rt-1"


async def test_me_asks_for_the_user_the_token_names(api, backends: FakeBackends, auth, user_id):
    response = await api.get("/v1/me", headers=auth)

    assert response.status_code == 200
    assert response.json() == {
        "id": user_id,
        "email": "ada@example.com",
        "full_name": None,
        "avatar_url": None,
        "birthdate": None,
        "locale": "en",
        "is_verified": False,
        "is_superuser": False,
        "created_at": "2025-01-01T12:00:00Z",
        "last_login_at": None,
    }
    assert backends.only("GetUser").request.user_id == user_id


# ------------------------------------------------------------ stories


async def test_create_story_answers_201_with_location(api, backends: FakeBackends, auth, user_id):
    response = await api.post(
        "/v1/stories",
        headers=auth,
        json={"genre": " noir ", "characters": ["Mara", " the keeper "]},
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/v1/stories/{backends.stories.new_story_id}"
    assert set(body) == SUMMARY_KEYS | {"segments"}
    assert body["id"] == backends.stories.new_story_id
    assert (body["genre"], body["title"], body["opening_line"]) == (
        "noir",
        "A generated title",
        None,
    )
    assert body["characters"] == ["Mara", "the keeper"]
    assert body["segment_count"] == 1 and body["created_at"] == "2025-01-01T12:00:00Z"
    [opening] = body["segments"]
    assert set(opening) == SEGMENT_KEYS
    assert (opening["position"], opening["kind"]) == (1, "opening")
    assert opening["generated_by"] == {
        "provider": "offline",
        "model": "offline-v1",
        "is_language_model": False,
    }
    request = backends.only("CreateStory").request
    assert (request.user_id, request.genre, list(request.characters)) == (
        user_id,
        "noir",
        ["Mara", "the keeper"],
    )
    # Omitted is unset, so the service generates them, not "".
    assert not request.HasField("title") and not request.HasField("opening_line")


async def test_create_story_passes_title_and_opening_line(api, backends: FakeBackends, auth):
    response = await api.post(
        "/v1/stories",
        headers=auth,
        json={"genre": "noir", "title": "Fog", "opening_line": "It was late."},
    )

    assert response.status_code == 201
    assert (response.json()["title"], response.json()["opening_line"]) == ("Fog", "It was late.")
    request = backends.only("CreateStory").request
    assert (request.title, request.opening_line) == ("Fog", "It was late.")


async def test_create_story_as_event_stream_sends_the_opening_then_the_story(
    api, backends: FakeBackends, auth, user_id
):
    body = {"genre": " noir ", "characters": ["Mara"]}

    response = await api.post(
        "/v1/stories", headers={**auth, "Accept": "text/event-stream"}, json=body
    )
    answered = await api.post("/v1/stories", headers=auth, json=body)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    events = sse_events(response.text)
    assert events[:-1] == [("token", {"text": piece}) for piece in ("It ", "began.")]
    kind, story = events[-1]
    # Exactly what the JSON answer carries.
    assert kind == "story" and story == answered.json()
    assert story["segments"][0]["text"] == OPENING
    call = backends.only("CreateStoryStream")
    request = call.request
    assert (request.user_id, request.genre, list(request.characters)) == (
        user_id,
        "noir",
        ["Mara"],
    )
    assert not request.HasField("title") and not request.HasField("opening_line")
    # A model call: the long deadline, as for the JSON answer.
    assert call.time_remaining is not None
    assert GENERATION_DEADLINE_SECONDS - 1.5 < call.time_remaining


async def test_a_create_retried_as_an_event_stream_sends_just_the_story(
    api, backends: FakeBackends, auth
):
    backends.stories.answer_as_retry = True

    response = await api.post(
        "/v1/stories",
        headers={**auth, "Accept": "text/event-stream", "Idempotency-Key": "retry-me-3"},
        json={"genre": "noir"},
    )

    assert response.status_code == 200
    [(kind, story)] = sse_events(response.text)
    assert kind == "story" and story["id"] == backends.stories.new_story_id
    assert backends.only("CreateStoryStream").request.idempotency_key == "retry-me-3"


async def test_list_stories_pages_with_limit_and_cursor(api, backends: FakeBackends, auth, user_id):
    first = await api.get("/v1/stories", headers=auth)
    second = await api.get(
        "/v1/stories", params={"limit": 2, "cursor": "cursor-of-page-2"}, headers=auth
    )

    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["next_cursor"] == "cursor-of-page-2"
    assert len(first.json()["items"]) == 20  # the default page size
    assert set(first.json()["items"][0]) == SUMMARY_KEYS  # summaries: no segments
    assert second.json()["next_cursor"] is None
    assert len(second.json()["items"]) == 2
    default, paged = [call.request for call in backends.calls if call.method == "ListStories"]
    assert (default.user_id, default.limit, default.cursor) == (user_id, 20, "")
    assert (paged.user_id, paged.limit, paged.cursor) == (user_id, 2, "cursor-of-page-2")


async def test_get_story_answers_the_story_with_its_segments(
    api, backends: FakeBackends, auth, user_id
):
    # Any spelling of the UUID reaches the service in its canonical form.
    response = await api.get(f"/v1/stories/{STORY_ID.upper()}", headers=auth)

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == STORY_ID
    assert body["opening_line"] == "The lamp had been dark for three nights."
    assert [(s["position"], s["kind"]) for s in body["segments"]] == [
        (1, "opening"),
        (2, "continuation"),
    ]
    request = backends.only("GetStory").request
    assert (request.user_id, request.story_id) == (user_id, STORY_ID)


@pytest.mark.parametrize("body", [None, {}, {"direction": "  "}], ids=["no-body", "empty", "blank"])
async def test_continue_without_direction_sends_none(api, backends: FakeBackends, auth, body):
    response = await api.post(f"/v1/stories/{STORY_ID}/continue", headers=auth, json=body)

    assert response.status_code == 201, response.text
    assert not backends.only("ContinueStory").request.HasField("direction")


async def test_continue_as_json_answers_201_with_the_segment(
    api, backends: FakeBackends, auth, user_id
):
    response = await api.post(
        f"/v1/stories/{STORY_ID}/continue", headers=auth, json={"direction": " A storm. "}
    )

    assert response.status_code == 201, response.text
    segment = response.json()
    assert set(segment) == SEGMENT_KEYS
    assert (segment["position"], segment["kind"]) == (2, "continuation")
    assert segment["text"] == "".join(CONTINUATION_PIECES)
    request = backends.only("ContinueStory").request
    assert (request.user_id, request.story_id, request.direction) == (
        user_id,
        STORY_ID,
        "A storm.",
    )


async def test_continue_as_event_stream_sends_tokens_then_the_segment(
    api, backends: FakeBackends, auth
):
    response = await api.post(
        f"/v1/stories/{STORY_ID}/continue",
        headers={**auth, "Accept": "text/event-stream"},
        json={"direction": "rain"},
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    events = sse_events(response.text)
    assert events[:-1] == [("token", {"text": piece}) for piece in CONTINUATION_PIECES]
    kind, segment = events[-1]
    assert kind == "segment" and set(segment) == SEGMENT_KEYS
    assert segment["text"] == "".join(CONTINUATION_PIECES)


async def test_an_error_after_the_first_text_ends_the_stream_with_an_error_event(
    api, backends: FakeBackends, auth
):
    backends.stories.fail_after_text = Failure(
        grpc.StatusCode.UNAVAILABLE, "the model went away", "upstream-error"
    )

    response = await api.post(
        f"/v1/stories/{STORY_ID}/continue", headers={**auth, "Accept": "text/event-stream"}
    )

    assert response.status_code == 200  # sent with the first piece of text
    events = sse_events(response.text)
    assert [kind for kind, _ in events] == ["token", "token", "error"]
    problem = events[-1][1]
    assert (problem["type"], problem["status"]) == (BASE + "model-unavailable", 503)
    assert problem["request_id"] == response.headers["x-request-id"]


async def test_end_story_answers_the_completed_story(api, backends: FakeBackends, auth, user_id):
    response = await api.post(
        f"/v1/stories/{STORY_ID}/end", headers=auth, json={"direction": "They leave."}
    )

    assert response.status_code == 200
    body = response.json()
    assert body["is_complete"] is True
    assert body["segments"][-1]["kind"] == "ending"
    request = backends.only("EndStory").request
    assert (request.user_id, request.story_id, request.direction) == (
        user_id,
        STORY_ID,
        "They leave.",
    )


async def test_delete_story_answers_204_without_a_body(api, backends: FakeBackends, auth, user_id):
    response = await api.delete(f"/v1/stories/{STORY_ID}", headers=auth)

    assert response.status_code == 204
    assert response.content == b""
    request = backends.only("DeleteStory").request
    assert (request.user_id, request.story_id) == (user_id, STORY_ID)


# ------------------------------------------------------------ billing


async def test_usage_answers_plan_period_and_amounts(api, backends: FakeBackends, auth, user_id):
    response = await api.get("/v1/usage", headers=auth)

    assert response.status_code == 200
    assert response.json() == {
        "plan": "free",
        "period_start": "2025-01-01T00:00:00Z",
        "period_end": "2025-02-01T00:00:00Z",
        # Settled (3) and in progress (1): a returned call counts at once.
        "generations_used": 4,
        "generations_in_progress": 1,
        "generations_limit": 5,
        "cost_used_usd": "0.024",
        "cost_limit_usd": "10",
    }
    assert backends.only("GetUsage").request.user_id == user_id


async def test_an_unlimited_plan_has_null_limits(api, backends: FakeBackends, auth):
    backends.billing.unlimited = True

    body = (await api.get("/v1/usage", headers=auth)).json()

    assert body["plan"] == "enterprise"
    assert body["generations_limit"] is None and body["cost_limit_usd"] is None


async def test_usage_logs_answer_a_page_newest_first(api, backends: FakeBackends, auth, user_id):
    response = await api.get("/v1/usage/logs?limit=3", headers=auth)

    assert response.status_code == 200
    body = response.json()
    assert body["next_cursor"] == "cursor-of-page-2"
    assert [item["id"] for item in body["items"]] == ["1000", "999", "998"]
    assert body["items"][0] == {
        "id": "1000",
        "created_at": "2025-01-01T12:00:00Z",
        "operation": "opening",
        "story_id": "71298cff-2b8d-5852-866b-a3bbb34e6e29",
        "provider": "mistral",
        "model": "mistral-small-latest",
        "prompt_tokens": 800,
        "completion_tokens": 300,
        "cost_usd": "0.00034",
        "estimated": False,
        "outcome": "completed",
        "counted": True,
        "generation_id": body["items"][0]["generation_id"],
        "attributes": {},
        "production_type": None,
    }
    assert body["items"][1]["story_id"] is None  # a call about no story
    assert body["items"][1]["estimated"] is True
    # A job stage's call says what it was for.
    job_stage = body["items"][2]
    assert (job_stage["operation"], job_stage["production_type"]) == ("job_stage", "short_story")
    assert job_stage["attributes"] == {"production_type": "short_story", "stage": "draft-1"}
    request = backends.only("ListUsageLogs").request
    assert (request.user_id, request.limit, request.cursor) == (user_id, 3, "")


async def test_usage_logs_follow_the_cursor_to_the_last_page(api, backends: FakeBackends, auth):
    response = await api.get("/v1/usage/logs?cursor=cursor-of-page-2", headers=auth)

    assert response.status_code == 200
    body = response.json()
    assert body["next_cursor"] is None
    assert len(body["items"]) == 20  # the default page size
    request = backends.only("ListUsageLogs").request
    assert (request.limit, request.cursor) == (20, "cursor-of-page-2")


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=many", "cursor=" + "x" * 513])
async def test_usage_logs_refuse_a_bad_page_request(api, backends: FakeBackends, auth, query):
    response = await api.get(f"/v1/usage/logs?{query}", headers=auth)

    body = assert_problem(response, 422, "validation-error")
    assert body["errors"][0]["parameter"] == query.split("=")[0]
    assert not [c for c in backends.calls if c.method == "ListUsageLogs"]


async def test_a_malformed_cursor_is_a_422_with_billings_reason(api, backends: FakeBackends, auth):
    backends.fail(
        "ListUsageLogs",
        grpc.StatusCode.INVALID_ARGUMENT,
        "cursor is malformed: pass the next_cursor of the previous page as it is",
        "invalid-argument",
    )

    response = await api.get("/v1/usage/logs?cursor=forged", headers=auth)

    body = assert_problem(response, 422, "validation-error")
    assert body["detail"].startswith("cursor is malformed")


async def test_usage_breakdown_answers_per_model_per_operation_and_total(
    api, backends: FakeBackends, auth, user_id
):
    response = await api.get("/v1/usage/breakdown", headers=auth)

    assert response.status_code == 200
    body = response.json()
    assert (body["period_start"], body["period_end"]) == (
        "2025-01-01T00:00:00Z",
        "2025-02-01T00:00:00Z",
    )
    assert body["by_model"][0] == {
        "model": "mistral-large-latest",
        "provider": "mistral",
        "generations": 1,
        "calls": 2,
        "prompt_tokens": 200,
        "completion_tokens": 80,
        "cost_usd": "0.02",
    }
    assert [row["operation"] for row in body["by_operation"]] == ["continuation", "opening"]
    assert "provider" not in body["by_operation"][0]
    assert body["by_production_type"] == [
        {
            "production_type": "short_story",
            "generations": 0,
            "calls": 1,
            "prompt_tokens": 100,
            "completion_tokens": 40,
            "cost_usd": "0.001",
        }
    ]
    assert body["total"] == {
        "generations": 3,
        "calls": 4,
        "prompt_tokens": 400,
        "completion_tokens": 160,
        "cost_usd": "0.024",
    }
    assert backends.only("GetUsageBreakdown").request.user_id == user_id


# ------------------------------------------------------------ every call


@pytest.mark.parametrize(
    ("method", "path", "body", "rpc", "deadline"),
    [
        ("GET", "/v1/me", None, "GetUser", GRPC_DEADLINE_SECONDS),
        ("POST", "/v1/stories", {"genre": "noir"}, "CreateStory", GENERATION_DEADLINE_SECONDS),
        ("GET", "/v1/stories", None, "ListStories", GRPC_DEADLINE_SECONDS),
        ("GET", f"/v1/stories/{STORY_ID}", None, "GetStory", GRPC_DEADLINE_SECONDS),
        (
            "POST",
            f"/v1/stories/{STORY_ID}/continue",
            None,
            "ContinueStory",
            GENERATION_DEADLINE_SECONDS,
        ),
        ("POST", f"/v1/stories/{STORY_ID}/end", None, "EndStory", GENERATION_DEADLINE_SECONDS),
        ("DELETE", f"/v1/stories/{STORY_ID}", None, "DeleteStory", GRPC_DEADLINE_SECONDS),
        ("GET", "/v1/usage", None, "GetUsage", GRPC_DEADLINE_SECONDS),
        ("GET", "/v1/usage/logs", None, "ListUsageLogs", GRPC_DEADLINE_SECONDS),
        ("GET", "/v1/usage/breakdown", None, "GetUsageBreakdown", GRPC_DEADLINE_SECONDS),
        (
            "POST",
            "/v1/auth/login",
            {"email": "ada@example.com", "password": "pw"},
            "Login",
            GRPC_DEADLINE_SECONDS,
        ),
    ],
)
async def test_every_call_carries_the_request_id_and_its_deadline(
    api, backends: FakeBackends, auth, method, path, body, rpc, deadline
):
    response = await api.request(
        method, path, json=body, headers={**auth, "X-Request-ID": "trace-me-7"}
    )

    assert response.status_code < 300, response.text
    call = backends.only(rpc)
    assert call.metadata["x-request-id"] == "trace-me-7"
    # Model calls get the long deadline, everything else the short one. (The
    # deadline travels as a rounded timeout: allow a little slack above.)
    assert call.time_remaining is not None
    assert deadline - 1.5 < call.time_remaining < deadline + 0.5


async def test_readyz_is_200_when_every_service_is_serving(api):
    response = await api.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "services": dict.fromkeys(("users", "stories", "generation", "billing", "media"), "serving"),
        "unavailable": [],
        # The fakes report no dependencies.
        "dependencies": {name: {} for name in ("users", "stories", "generation", "billing", "media")},
    }


# ------------------------------------------------------------ statuses from a service


async def test_not_found_from_the_service_is_a_404_problem(api, backends: FakeBackends, auth):
    backends.fail("GetStory", grpc.StatusCode.NOT_FOUND, "story not found", "not-found")

    response = await api.get(f"/v1/stories/{STORY_ID}", headers=auth)

    assert assert_problem(response, 404, "not-found")["detail"] == "story not found"


@pytest.mark.parametrize("accept", ["application/json", "text/event-stream"])
async def test_continuing_a_complete_story_is_a_409_problem_even_for_sse(
    api, backends: FakeBackends, auth, accept
):
    backends.fail(
        "ContinueStory", grpc.StatusCode.FAILED_PRECONDITION, "the story is complete", "conflict"
    )

    response = await api.post(
        f"/v1/stories/{STORY_ID}/continue", headers={**auth, "Accept": accept}
    )

    assert assert_problem(response, 409, "conflict")["detail"] == "the story is complete"


@pytest.mark.parametrize(
    ("rpc", "accept"),
    [
        ("CreateStory", "application/json"),
        # Refused before any text: a real 402, not a 200 stream with an error event.
        ("CreateStoryStream", "text/event-stream"),
    ],
)
async def test_a_quota_refusal_is_a_402_problem(api, backends: FakeBackends, auth, rpc, accept):
    backends.fail(
        rpc,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "monthly generation quota exceeded",
        QuotaExceeded.reason,
    )

    response = await api.post(
        "/v1/stories", headers={**auth, "Accept": accept}, json={"genre": "noir"}
    )

    body = assert_problem(response, 402, "quota-exceeded")
    assert body["detail"] == "monthly generation quota exceeded"
    assert "location" not in response.headers
    # An older billing names no plan: the problem has no such members either.
    assert not {"plan", "quota", "limit", "resets_at"} & set(body)


@pytest.mark.parametrize(
    ("quota", "limit", "shown"), [("generations", "5", 5), ("cost", "10.5", "10.5")]
)
async def test_a_quota_refusal_names_the_plan_the_limit_and_when_it_resets(
    api, backends: FakeBackends, auth, quota, limit, shown
):
    backends.fail(
        "CreateStory",
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "monthly quota exceeded",
        QuotaExceeded.reason,
        {"plan": "free", "quota": quota, "limit": limit, "resets_at": "2025-02-01T00:00:00Z"},
    )

    response = await api.post("/v1/stories", headers=auth, json={"genre": "noir"})

    body = assert_problem(response, 402, "quota-exceeded")
    assert (body["plan"], body["quota"], body["limit"], body["resets_at"]) == (
        "free",
        quota,
        shown,
        "2025-02-01T00:00:00Z",
    )


# ------------------------------------------------------------ stories: Idempotency-Key

WRITES = [
    ("CreateStory", "/v1/stories", {"genre": "noir"}),
    ("ContinueStory", f"/v1/stories/{STORY_ID}/continue", {}),
    ("EndStory", f"/v1/stories/{STORY_ID}/end", {}),
]
WRITE_IDS = ["create", "continue", "end"]


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=WRITE_IDS)
async def test_writes_pass_the_idempotency_key_on(
    api, backends: FakeBackends, auth, method, path, body
):
    with_key = await api.post(path, json=body, headers={**auth, "Idempotency-Key": "retry-me-1"})
    without = await api.post(path, json=body, headers=auth)

    assert with_key.status_code == without.status_code < 300, with_key.text
    keys = [call.request.idempotency_key for call in backends.calls if call.method == method]
    assert keys == ["retry-me-1", ""]


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=WRITE_IDS)
@pytest.mark.parametrize("key", ["", "k" * 256], ids=["empty", "overlong"])
async def test_a_write_with_an_empty_or_overlong_idempotency_key_is_a_422(
    api, backends: FakeBackends, auth, method, path, body, key
):
    response = await api.post(path, json=body, headers={**auth, "Idempotency-Key": key})

    problem = assert_problem(response, 422, "validation-error")
    assert [error["header"] for error in problem["errors"]] == ["Idempotency-Key"]
    assert not [call for call in backends.calls if call.method == method]


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=WRITE_IDS)
async def test_a_write_reusing_an_idempotency_key_is_a_422(
    api, backends: FakeBackends, auth, method, path, body
):
    backends.fail(
        method,
        grpc.StatusCode.INVALID_ARGUMENT,
        "idempotency_key: already used for a different request (create-story)",
        reason="idempotency-key-reused",
    )

    response = await api.post(path, json=body, headers={**auth, "Idempotency-Key": "used"})

    assert assert_problem(response, 422, "idempotency-key-reused")["detail"].startswith(
        "idempotency_key:"
    )
    assert "location" not in response.headers


@pytest.mark.parametrize(
    ("method", "path", "body", "accept"),
    [
        *[(*write, "application/json") for write in WRITES],
        # Refused before any text: a real 409, not a 200 stream with an error event.
        ("CreateStoryStream", *WRITES[0][1:], "text/event-stream"),
        (*WRITES[1], "text/event-stream"),
    ],
)
async def test_a_retry_while_the_first_runs_is_a_409_with_retry_after(
    api, backends: FakeBackends, auth, method, path, body, accept
):
    backends.fail(
        method,
        grpc.StatusCode.FAILED_PRECONDITION,
        "idempotency_key: the first request with this key is still being processed",
        reason="idempotency-key-in-progress",
    )

    response = await api.post(
        path,
        json=body,
        headers={**auth, "Idempotency-Key": "twice", "Accept": accept},
    )

    assert_problem(response, 409, "idempotency-key-in-progress")
    assert int(response.headers["retry-after"]) >= 1


async def test_a_continue_retried_as_an_event_stream_sends_just_the_segment(
    api, backends: FakeBackends, auth
):
    backends.stories.answer_as_retry = True

    response = await api.post(
        f"/v1/stories/{STORY_ID}/continue",
        headers={**auth, "Accept": "text/event-stream", "Idempotency-Key": "retry-me-2"},
    )

    assert response.status_code == 200
    [(kind, segment)] = sse_events(response.text)
    assert kind == "segment" and segment["text"] == "".join(CONTINUATION_PIECES)
