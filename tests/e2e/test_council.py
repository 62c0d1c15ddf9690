"""The council across real processes (the launcher's gateway, stories,
generation, billing), real Postgres and NATS, with the offline council of
three: a question answered in three streamed stages and stored with every
stage, a generated title, starring and renaming, and clarifying questions."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from .test_keys_admin import make_superuser

pytestmark = pytest.mark.e2e


def sse(http, path: str, headers: dict, body: dict) -> list[tuple[str, dict]]:
    events: list[tuple[str, dict]] = []
    name, data = None, None
    with http.stream(
        "POST", path, json=body, headers={**headers, "Accept": "text/event-stream"}, timeout=120
    ) as stream:
        assert stream.status_code == 200, stream.read()
        for line in stream.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
            elif not line and name:
                events.append((name, data))
                name, data = None, None
    return events


def test_a_question_is_answered_in_three_streamed_stages_and_stored(api, problem):
    writer = api.register()
    created = api.http.post("/v1/conversations", json={}, headers=writer.headers)
    assert created.status_code == 201, created.text
    conversation = created.json()

    events = sse(
        api.http,
        f"/v1/conversations/{conversation['id']}/messages",
        writer.headers,
        {"content": "Who should tell the story of the lighthouse: the keeper or the sea?"},
    )
    names = [name for name, _ in events]
    # The stages in order, each streaming text before its results.
    assert names.index("answer") < names.index("review") < names.index("aggregate")
    assert names.index("aggregate") < names.index("chairman") < len(names) - 1
    assert names[-1] == "message" and "delta" in names and "title" in names
    answers = [data for name, data in events if name == "answer"]
    assert len(answers) == 3 and len({a["model"] for a in answers}) == 3
    assert len({a["text"] for a in answers}) == 3

    stored = api.http.get(f"/v1/conversations/{conversation['id']}", headers=writer.headers).json()
    assert stored["title"] and stored["title"] != ""
    question, answer = stored["messages"]
    assert (question["role"], answer["role"]) == ("user", "assistant")
    council = answer["council"]
    assert answer["content"] == council["chairman"]["text"] and answer["content"]
    assert len(council["answers"]) == 3 and len(council["reviews"]) == 3
    for review in council["reviews"]:
        assert review["ranking_parsed"] and len(review["label_to_model"]) == 3
    # Each member is ranked by the other two: its own vote is left out.
    assert sorted(member["votes"] for member in council["aggregate"]) == [2, 2, 2]
    assert council["failed_members"] == []

    # One generation of the plan for the whole message, once stories stored it.
    api.wait_for(lambda: api.usage(writer)["generations_used"] == 1)
    # Every call of every stage in the usage logs (settled asynchronously).
    def operations() -> set[str]:
        logs = api.http.get("/v1/usage/logs", params={"limit": 100}, headers=writer.headers)
        return {entry["operation"] for entry in logs.json()["items"]}

    api.wait_for(
        lambda: {"council_stage_1", "council_stage_2", "council_stage_3"} <= operations()
    )

    renamed = api.http.patch(
        f"/v1/conversations/{conversation['id']}",
        json={"title": "Keeper or sea", "starred": True},
        headers=writer.headers,
    )
    assert renamed.status_code == 200, renamed.text
    starred = api.http.get(
        "/v1/conversations", params={"starred": "true"}, headers=writer.headers
    ).json()
    assert [(c["id"], c["title"]) for c in starred["items"]] == [
        (conversation["id"], "Keeper or sea")
    ]
    stranger = api.register()
    problem(
        api.http.get(f"/v1/conversations/{conversation['id']}", headers=stranger.headers), 404
    )


def test_clarifying_questions_are_answered_before_the_council_deliberates(start_private_stack):
    api = start_private_stack(COUNCIL_FOLLOW_UP_QUESTIONS="2")
    writer = api.register()
    conversation = api.http.post("/v1/conversations", json={}, headers=writer.headers).json()
    path = f"/v1/conversations/{conversation['id']}"

    asked = api.http.post(
        f"{path}/messages", json={"content": "Write me a plot twist."}, headers=writer.headers
    )
    assert asked.status_code == 200, asked.text
    questions = asked.json()["questions"]
    assert 1 <= len(questions) <= 2
    assert api.http.get(path, headers=writer.headers).json()["pending_questions"] == questions

    answered = api.http.post(
        f"{path}/follow-up",
        json={"answers": [f"answer {n}" for n in range(len(questions))]},
        headers=writer.headers,
    )
    assert answered.status_code == 201, answered.text
    council = answered.json()["council"]
    assert [f["answer"] for f in council["follow_ups"]] == [
        f"answer {n}" for n in range(len(questions))
    ]
    assert council["chairman"]["text"]
    assert api.http.get(path, headers=writer.headers).json()["pending_questions"] == []


def test_a_message_whose_stories_process_is_killed_midway_resumes_without_asking_again(
    start_private_stack,
):
    """kill -9 of stories while the council deliberates, after the members'
    answers were stored: the message is shown interrupted once the launcher has
    started stories again, and resuming it keeps those answers (the members
    are not asked again) and counts one generation."""
    # Slow enough offline text to be killed in the middle of.
    api = start_private_stack(GENERATION_OFFLINE_TOKEN_DELAY_MS="40")
    writer = api.register()
    conversation = api.http.post("/v1/conversations", json={}, headers=writer.headers).json()
    path = f"/v1/conversations/{conversation['id']}"

    seen: list[str] = []
    reviewing = threading.Event()

    def ask() -> None:
        try:
            with api.http.stream(
                "POST",
                f"{path}/messages",
                json={"content": "Who should narrate the lighthouse story?"},
                headers={**writer.headers, "Accept": "text/event-stream"},
                timeout=120,
            ) as stream:
                for line in stream.iter_lines():
                    if line.startswith("data: ") and '"stage": 2' in line and seen[-1:] == [
                        "stage_started"
                    ]:
                        reviewing.set()  # the answers of stage 1 are stored
                    if line.startswith("event: "):
                        seen.append(line[7:])
        except httpx.HTTPError:
            pass  # the stream is cut when stories dies

    asking = threading.Thread(target=ask, daemon=True)
    asking.start()
    assert reviewing.wait(60), f"stage 2 never started: {seen}"
    stories = api.stack.children["stories"]
    os.kill(stories, signal.SIGKILL)
    api.stack.wait_restarted("stories", stories, timeout=30)
    asking.join(timeout=30)

    def interrupted() -> dict | None:
        reply = api.http.get(path, headers=writer.headers)
        if reply.status_code != 200:
            return None
        message = reply.json()["messages"][-1]
        return message if message["status"] == "interrupted" else None

    message = api.wait_for(interrupted, timeout=60)
    assert [a["model"] for a in message["council"]["answers"]], "the stored answers are shown"
    resumed = api.http.post(f"{path}/messages/{message['id']}/resume", headers=writer.headers)
    assert resumed.status_code == 201, resumed.text
    answer = resumed.json()
    assert answer["status"] == "complete" and answer["content"]
    assert len(answer["council"]["answers"]) == 3 and answer["council"]["chairman"]["text"]

    api.wait_for(lambda: api.usage(writer)["generations_used"] == 1)
    logs = api.http.get("/v1/usage/logs", params={"limit": 100}, headers=writer.headers).json()
    first_stage = [e for e in logs["items"] if e["operation"] == "council_stage_1"]
    assert len(first_stage) == 3, "each member answered once: resuming did not ask again"


def _stories_sql(stack, statement: str, *args) -> None:
    """Run `statement` in the stack's database as its admin (the test plays
    time forward in stories' schema: nothing of the product does this)."""

    async def run() -> None:
        admin = stack.env.get("POSTGRES_ADMIN_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
        connection = await asyncpg.connect(
            admin.rsplit("/", 1)[0] + "/" + stack.env["FABULA_DATABASE_NAME"]
        )
        try:
            await connection.execute(statement, *args)
        finally:
            await connection.close()

    asyncio.run(run())


def test_old_conversations_hide_on_the_free_plan_and_return_after_an_upgrade(
    api, stack, problem
):
    writer, admin = api.register(), api.register()
    make_superuser(stack, admin.email)
    user_id = api.http.get("/v1/me", headers=writer.headers).json()["id"]
    old = api.http.post("/v1/conversations", json={"title": "Old"}, headers=writer.headers).json()
    recent = api.http.post(
        "/v1/conversations", json={"title": "Recent"}, headers=writer.headers
    ).json()
    # 31 days old: past the free plan's 30.
    _stories_sql(
        stack,
        "UPDATE stories.conversations SET created_at = now() - interval '31 days' WHERE id = $1",
        uuid.UUID(old["id"]),
    )

    def listed() -> list[str]:
        response = api.http.get("/v1/conversations", headers=writer.headers)
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()["items"]]

    assert listed() == [recent["id"]]
    problem(api.http.get(f"/v1/conversations/{old['id']}", headers=writer.headers), 404)

    upgraded = api.http.put(
        f"/v1/admin/users/{user_id}/plan",
        json={"plan": "pro", "reason": "council e2e"},
        headers=admin.headers,
    )
    assert upgraded.status_code == 200, upgraded.text
    # Billing's PlanChanged reaches stories: the old one is back.
    api.wait_for(lambda: listed() == [recent["id"], old["id"]])
    back = api.http.get(f"/v1/conversations/{old['id']}", headers=writer.headers)
    assert back.status_code == 200 and back.json()["title"] == "Old"


COUNCIL_SAMPLE = (
    Path(__file__).resolve().parents[2] / "services" / "stories" / "tests" / "data" / "council_sample"
)


FABULA = str(Path(sys.executable).with_name("fabula"))


def run_council_importer(stack, folder: Path, *args: str) -> subprocess.CompletedProcess:
    """What `make import-council DIR=<folder> [EMAIL=...]` runs."""
    return subprocess.run(
        [FABULA, "import", "council", "--dir", str(folder), *args],
        env=stack.env,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_council_apps_folder_imports_once_and_reports_what_it_could_not(
    api, stack, tmp_path
):
    ada, admin = api.register(), api.register()
    make_superuser(stack, admin.email)
    folder = tmp_path / "council"
    shutil.copytree(COUNCIL_SAMPLE, folder)
    profile = folder / "profiles" / "user-ada.json"
    profile.write_text(profile.read_text().replace("ada@example.com", ada.email))

    first = run_council_importer(stack, folder, "--email", ada.email)
    # A stranger Fabula does not know and a malformed file: reported, exit 1.
    assert first.returncode == 1, first.stdout + first.stderr
    assert "imported 2, skipped 0 (already imported), failed 2" in first.stdout
    assert "no Fabula account has the email stranger@example.org" in first.stdout
    assert "d15ea5e0-3333-4c4d-8e5f-6a7b8c9d0e1f.json: missing messages[1].stage3" in first.stdout
    assert "user-ada: tier pro, status active, Fabula user" in first.stdout

    again = run_council_importer(stack, folder, "--email", ada.email)
    assert "imported 0, skipped 2 (already imported), failed 2" in again.stdout, again.stdout

    # From 2024 and 2025: hidden on the free plan, there once ada's plan is paid.
    assert api.http.get("/v1/conversations", headers=ada.headers).json()["items"] == []
    user_id = api.http.get("/v1/me", headers=ada.headers).json()["id"]
    assert api.http.put(
        f"/v1/admin/users/{user_id}/plan",
        json={"plan": "pro", "reason": "imported a pro subscription"},
        headers=admin.headers,
    ).status_code == 200

    def listed() -> list[dict]:
        return api.http.get("/v1/conversations", headers=ada.headers).json()["items"]

    items = api.wait_for(lambda: len(listed()) == 2 and listed())
    assert [(c["title"], c["starred"], c["created_at"][:19]) for c in items] == [
        ("Keeper or sea?", True, "2025-03-01T09:15:00"),
        ("New Conversation", False, "2024-11-20T18:02:41"),
    ]
    keeper = api.http.get(f"/v1/conversations/{items[0]['id']}", headers=ada.headers).json()
    assert [m["role"] for m in keeper["messages"]] == ["user", "assistant", "user", "assistant"]
    assert keeper["messages"][1]["council"]["chairman"]["model"] == "google/gemini-2.5-pro"
