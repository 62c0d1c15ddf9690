"""The user story of the foundation issue, over HTTP against real processes."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

pytestmark = pytest.mark.e2e


def parse_sse(body: str) -> list[tuple[str, dict]]:
    events = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        name, data = "message", []
        for line in block.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
        if data:
            events.append((name, json.loads("\n".join(data))))
    return events


def sse_events(api, path: str, body: dict, headers: dict) -> list[tuple[str, dict]]:
    """The events of a POST asked for as Server-Sent Events (a 200 stream)."""
    with api.http.stream(
        "POST", path, json=body, headers={**headers, "Accept": "text/event-stream"}
    ) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        return parse_sse(stream.read().decode())


def test_health_and_readiness(api):
    assert api.http.get("/healthz").status_code == 200
    ready = api.http.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready" and ready.json()["unavailable"] == []


def test_register_login_refresh_me(api, problem):
    writer = api.register()
    tokens = writer.tokens
    assert tokens["token_type"] == "bearer"
    assert 0 < tokens["expires_in"] <= 3600
    assert tokens["user"]["email"] == writer.email

    me = api.http.get("/v1/me", headers=writer.headers)
    assert me.status_code == 200 and me.json()["id"] == tokens["user"]["id"]

    login = api.http.post("/v1/auth/login", json={"email": writer.email.upper(), "password": writer.password})
    assert login.status_code == 200, login.text

    wrong = api.http.post("/v1/auth/login", json={"email": writer.email, "password": "not the password"})
    unknown = api.http.post("/v1/auth/login", json={"email": "nobody@example.com", "password": "whatever123"})
    assert problem(wrong, 401)["detail"] == problem(unknown, 401)["detail"]

    refreshed = api.http.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["refresh_token"] != tokens["refresh_token"]
    # Sent again at once (another tab, a retry): the same new refresh token.
    again = api.http.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert again.status_code == 200, again.text
    assert again.json()["refresh_token"] == refreshed.json()["refresh_token"]

    problem(api.http.post("/v1/auth/register", json={"email": writer.email, "password": "another-password"}), 409)

    # A registration retried with its Idempotency-Key: the same account, not a 409.
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = {"email": f"retry-{uuid.uuid4().hex[:8]}@example.com", "password": "correct horse"}
    first = api.http.post("/v1/auth/register", json=body, headers=key)
    retried = api.http.post("/v1/auth/register", json=body, headers=key)
    assert (first.status_code, retried.status_code) == (201, 201), retried.text
    assert retried.json()["user"] == first.json()["user"]
    other = api.http.post("/v1/auth/register", json={**body, "password": "another one"}, headers=key)
    problem(other, 422, "/idempotency-key-reused")
    problem(api.http.post("/v1/auth/register", json={"email": "not-an-email", "password": "long enough"}), 422)
    problem(api.http.post("/v1/auth/register", json={"email": "short@example.com", "password": "short"}), 422)


def test_whole_story(api, problem):
    writer = api.register()
    created = api.create_story(
        writer, genre="mystery", characters=["Inspector Hale", "Mara"], opening_line="The fog came early."
    )
    assert created.status_code == 201, created.text
    story = created.json()
    assert story["title"], "a title is generated when none is given"
    assert story["genre"] == "mystery" and story["characters"] == ["Inspector Hale", "Mara"]
    assert story["is_complete"] is False
    assert [s["position"] for s in story["segments"]] == [1]
    opening = story["segments"][0]
    assert opening["text"].strip()
    assert opening["generated_by"]["provider"] == "offline"
    assert opening["generated_by"]["is_language_model"] is False

    cont = api.http.post(f"/v1/stories/{story['id']}/continue", json={"direction": "Mara finds a key"},
                         headers=writer.headers)
    assert cont.status_code == 201, cont.text
    segment = cont.json()
    assert segment["position"] == 2 and segment["text"].strip() and segment["id"] and segment["created_at"]

    events = sse_events(api, f"/v1/stories/{story['id']}/continue", {}, writer.headers)
    kinds = [name for name, _ in events]
    assert kinds.count("token") >= 5 and kinds[-1] == "segment" and kinds.count("segment") == 1
    streamed = events[-1][1]
    assert streamed["position"] == 3
    assert "".join(data["text"] for name, data in events if name == "token") == streamed["text"]

    ended = api.http.post(f"/v1/stories/{story['id']}/end", json={"direction": "a quiet ending"},
                          headers=writer.headers)
    assert ended.status_code == 200, ended.text
    final = ended.json()
    assert final["is_complete"] is True
    assert [s["position"] for s in final["segments"]] == [1, 2, 3, 4]

    for action in ("continue", "end"):
        refused = api.http.post(f"/v1/stories/{story['id']}/{action}", json={}, headers=writer.headers)
        # Final: no point retrying.
        problem(refused, 409, "/story-complete")
        assert "retry-after" not in refused.headers

    fetched = api.http.get(f"/v1/stories/{story['id']}", headers=writer.headers).json()
    assert fetched["segments"] == final["segments"] and fetched["title"] == story["title"]
    assert set(fetched) >= {"id", "title", "genre", "characters", "opening_line", "is_complete",
                            "segments", "created_at", "updated_at"}

    # A long story is read as its basic view, then its segments page by page.
    basic = api.http.get(f"/v1/stories/{story['id']}", params={"view": "basic"}, headers=writer.headers)
    assert basic.status_code == 200, basic.text
    assert "segments" not in basic.json() and basic.json()["segment_count"] == 4
    paged, after = [], 0
    while after is not None:
        page = api.http.get(f"/v1/stories/{story['id']}/segments", params={"after": after, "limit": 3},
                            headers=writer.headers)
        assert page.status_code == 200, page.text
        paged.append(page.json()["items"])
        after = page.json()["next_after"]
    assert [[s["position"] for s in items] for items in paged] == [[1, 2, 3], [4]]
    assert [s for items in paged for s in items] == final["segments"]
    problem(api.http.get(f"/v1/stories/{story['id']}/segments", params={"limit": 0}, headers=writer.headers), 422)

    usage = api.usage(writer)
    assert usage["plan"] == "free" and usage["generations_limit"] == 5
    assert usage["cost_limit_usd"] is not None
    # 4 segments written by the model; the last usage events may still be in flight.
    api.wait_for(lambda: api.usage(writer)["generations_used"] == 4)

    assert api.http.delete(f"/v1/stories/{story['id']}", headers=writer.headers).status_code == 204
    problem(api.http.get(f"/v1/stories/{story['id']}", headers=writer.headers), 404)


def test_a_story_created_as_an_event_stream_shows_its_opening_as_it_is_written(api, problem):
    writer = api.register()
    sse = {**writer.headers, "Accept": "text/event-stream"}
    events = sse_events(
        api, "/v1/stories", {"genre": "mystery", "characters": ["Mara"]}, writer.headers
    )

    kinds = [name for name, _ in events]
    assert kinds.count("token") >= 5 and kinds[-1] == "story" and kinds.count("story") == 1
    story = events[-1][1]
    [opening] = story["segments"]
    assert "".join(data["text"] for name, data in events if name == "token") == opening["text"]
    # The story event is the story as stored (and as the JSON answer carries it).
    fetched = api.http.get(f"/v1/stories/{story['id']}", headers=writer.headers)
    assert fetched.json() == story
    api.wait_for(lambda: api.usage(writer)["generations_used"] == 1)
    assert len(api.http.get("/v1/stories", headers=writer.headers).json()["items"]) == 1
    # Refused before any text: an ordinary problem, not a 200 stream.
    problem(api.http.post("/v1/stories", json={"genre": " "}, headers=sse), 422)


def test_a_create_retried_with_its_idempotency_key_is_the_same_story_charged_once(api, problem):
    writer = api.register()
    key = {**writer.headers, "Idempotency-Key": str(uuid.uuid4())}
    body = {"genre": "noir", "title": "The Lost Answer"}
    first = api.http.post("/v1/stories", json=body, headers=key)
    assert first.status_code == 201, first.text
    api.wait_for(lambda: api.usage(writer)["generations_used"] == 1)
    charged = api.usage(writer)

    # The client timed out and retries: the same story, nothing more charged.
    retried = api.http.post("/v1/stories", json=body, headers=key)
    assert retried.status_code == 201, retried.text
    assert retried.json() == first.json()
    assert retried.headers["location"] == first.headers["location"]
    problem(api.http.post("/v1/stories", json={**body, "title": "Another"}, headers=key), 422,
            "/idempotency-key-reused")
    assert len(api.http.get("/v1/stories", headers=writer.headers).json()["items"]) == 1
    # A later story without a key is charged: the usage counts it and nothing else.
    assert api.create_story(writer).status_code == 201
    api.wait_for(lambda: api.usage(writer)["generations_used"] >= 2)
    assert api.usage(writer)["generations_used"] == charged["generations_used"] + 1


def test_list_is_newest_first_and_paginates(api):
    writer = api.register()
    titles = [f"Tale {i}" for i in range(3)]
    for title in titles:
        assert api.create_story(writer, title=title).status_code == 201
    page1 = api.http.get("/v1/stories", params={"limit": 2}, headers=writer.headers).json()
    assert [s["title"] for s in page1["items"]] == ["Tale 2", "Tale 1"]
    assert page1["next_cursor"]
    page2 = api.http.get("/v1/stories", params={"limit": 2, "cursor": page1["next_cursor"]},
                         headers=writer.headers).json()
    assert [s["title"] for s in page2["items"]] == ["Tale 0"]
    assert page2["next_cursor"] is None


def test_another_users_story_is_404_everywhere(api, problem):
    owner, intruder = api.register(), api.register()
    story = api.create_story(owner).json()
    path = f"/v1/stories/{story['id']}"
    problem(api.http.get(path, headers=intruder.headers), 404)
    problem(api.http.get(f"{path}/segments", headers=intruder.headers), 404)
    problem(api.http.post(f"{path}/continue", json={}, headers=intruder.headers), 404)
    problem(api.http.post(f"{path}/end", json={}, headers=intruder.headers), 404)
    problem(api.http.delete(path, headers=intruder.headers), 404)
    assert api.http.get("/v1/stories", headers=intruder.headers).json()["items"] == []
    # The owner still has it, untouched.
    assert len(api.http.get(path, headers=owner.headers).json()["segments"]) == 1


def test_sixth_generation_on_free_is_refused(api, problem):
    writer = api.register()
    story = api.create_story(writer).json()
    for _ in range(4):
        response = api.http.post(f"/v1/stories/{story['id']}/continue", json={}, headers=writer.headers)
        assert response.status_code == 201, response.text
    refused = api.http.post(f"/v1/stories/{story['id']}/continue", json={}, headers=writer.headers)
    problem(refused, 402, "quota-exceeded")
    # Nothing was written for the refused call.
    assert len(api.http.get(f"/v1/stories/{story['id']}", headers=writer.headers).json()["segments"]) == 5
    problem(api.create_story(writer), 402, "quota-exceeded")
    api.wait_for(lambda: api.usage(writer)["generations_used"] == 5)


def test_concurrent_requests_at_the_edge_do_not_overspend(api):
    writer = api.register()
    with ThreadPoolExecutor(max_workers=12) as pool, httpx.Client(base_url=api.stack.base_url, timeout=60) as http:
        statuses = list(pool.map(
            lambda i: http.post("/v1/stories", json={"genre": "horror", "title": f"Race {i}"},
                                headers=writer.headers).status_code,
            range(12),
        ))
    assert sorted(statuses) == [201] * 5 + [402] * 7
    api.wait_for(lambda: api.usage(writer)["generations_used"] == 5)
    assert len(api.http.get("/v1/stories", params={"limit": 100}, headers=writer.headers).json()["items"]) == 5


def test_bad_input_gets_problem_documents(api, problem):
    writer = api.register()
    h = writer.headers
    problem(api.http.post("/v1/stories", json={"genre": "x" * 51}, headers=h), 422)
    problem(api.http.post("/v1/stories", json={"genre": "fantasy", "characters": ["a"] * 21}, headers=h), 422)
    problem(api.http.post("/v1/stories", json={}, headers=h), 422)
    story = api.create_story(writer).json()
    problem(api.http.post(f"/v1/stories/{story['id']}/continue", json={"direction": "d" * 5000}, headers=h), 422)
    problem(api.http.post("/v1/stories", content=b"{" + b" " * 2_000_000 + b"}",
                          headers={**h, "Content-Type": "application/json"}), 413)
    problem(api.http.get(f"/v1/stories/{uuid.uuid4()}", headers=h), 404)
    problem(api.http.get("/v1/stories/not-a-uuid", headers=h), 404)
    problem(api.http.get("/v1/nowhere", headers=h), 404)
    problem(api.http.get("/v1/stories"), 401)
    tampered = writer.tokens["access_token"][:-4] + "AAAA"
    problem(api.http.get("/v1/stories", headers={"Authorization": f"Bearer {tampered}"}), 401)
    problem(api.http.get("/v1/stories", params={"cursor": "garbage!!"}, headers=h), 422)
    # Only the one story above cost a generation; refused input cost nothing.
    api.wait_for(lambda: api.usage(writer)["generations_used"] == 1)


def test_request_id_is_echoed(api):
    response = api.http.get("/healthz", headers={"X-Request-ID": "trace-abc.123"})
    assert response.headers["x-request-id"] == "trace-abc.123"
    assert api.http.get("/healthz").headers["x-request-id"]


def test_request_id_travels_through_every_service_and_event(api):
    writer = api.register()
    request_id = f"trace-{uuid.uuid4().hex[:12]}"
    created = api.http.post("/v1/stories", json={"genre": "fantasy"},
                            headers={**writer.headers, "X-Request-ID": request_id})
    assert created.status_code == 201 and created.headers["x-request-id"] == request_id

    def logged_by():
        # Text log lines: "<date> <time> <LEVEL> <service> [<request id>] ..."
        lines = [line for line in api.stack.log_path.read_text(errors="replace").splitlines()
                 if f"[{request_id}]" in line]
        services = {line.split()[3] for line in lines if len(line.split()) > 3}
        consumed = any("billing-usage-recorded" in line for line in lines)  # via NATS headers
        return consumed and {"gateway", "stories", "billing", "generation"} <= services

    api.wait_for(logged_by)


def test_every_process_exposes_prometheus_metrics(api):
    writer = api.register()
    assert api.create_story(writer).status_code == 201
    env = api.stack.env
    expected = {
        f"http://127.0.0.1:{env['USERS_METRICS_PORT']}/metrics":
            ["fabula_grpc_server_handled_total", "fabula_outbox_backlog"],
        f"http://127.0.0.1:{env['STORIES_METRICS_PORT']}/metrics": ["fabula_grpc_server_handling_seconds"],
        f"http://127.0.0.1:{env['GENERATION_METRICS_PORT']}/metrics":
            ["fabula_generation_tokens_total", "fabula_outbox_published_total"],
        f"http://127.0.0.1:{env['BILLING_METRICS_PORT']}/metrics":
            ["fabula_consumer_handled_total", "fabula_consumer_pending"],
        f"http://127.0.0.1:{env['GATEWAY_METRICS_PORT']}/metrics":
            ["fabula_http_requests_total", "fabula_http_request_duration_seconds"],
    }
    # Never on the public API port.
    assert api.http.get("/metrics").status_code == 404

    def all_exposed() -> bool:
        for url, names in expected.items():
            samples = [line for line in httpx.get(url, timeout=5).text.splitlines() if not line.startswith("#")]
            if not all(any(line.startswith(name) for line in samples) for name in names):
                return False
        return True

    api.wait_for(all_exposed)


def test_concurrent_endings_write_and_bill_one(api, problem):
    writer = api.register()
    story = api.create_story(writer).json()
    with ThreadPoolExecutor(max_workers=3) as pool, httpx.Client(base_url=api.stack.base_url, timeout=60) as http:
        responses = list(pool.map(
            lambda _: http.post(f"/v1/stories/{story['id']}/end", json={}, headers=writer.headers),
            range(3),
        ))
    assert sorted(r.status_code for r in responses) == [200, 409, 409]
    for response in responses:
        if response.status_code == 409:
            # Busy while the ending is written (retry later); complete if it arrived after it (final).
            kind = problem(response, 409)["type"].rsplit("/", 1)[-1]
            assert kind in {"story-busy", "story-complete"}
            if kind == "story-busy":
                assert "already being written" in response.json()["detail"]
                assert int(response.headers["retry-after"]) >= 1
            else:
                assert "retry-after" not in response.headers
    [ended] = [r.json() for r in responses if r.status_code == 200]
    assert ended["is_complete"] is True and [s["position"] for s in ended["segments"]] == [1, 2]
    # The opening and the one ending; the refused calls reserved nothing.
    api.wait_for(lambda: api.usage(writer)["generations_used"] == 2)
    time.sleep(1.5)  # nothing else is still settling
    assert api.usage(writer)["generations_used"] == 2
