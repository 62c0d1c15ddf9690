"""Council conversation routes against a fake of stories' ConversationsService
(fakes_conversations.py): JSON and Server-Sent Events."""

from __future__ import annotations

import grpc
import pytest

from fabula_gateway.app import create_app

from .conftest import COUNCIL_DEADLINE_SECONDS, GRPC_DEADLINE_SECONDS
from .fakes import FakeBackends, Failure
from .fakes_conversations import ANSWER_ID, CHAIRMAN_TEXT, CONVERSATION_ID
from .sse import sse_events

BASE = "/v1/conversations"


async def test_a_conversation_is_created_with_its_location(api, backends: FakeBackends, auth, user_id):
    response = await api.post(BASE, json={"title": "  The lighthouse case "}, headers=auth)

    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"{BASE}/{CONVERSATION_ID}"
    body = response.json()
    assert (body["title"], body["starred"], body["messages"]) == ("The lighthouse case", False, [])
    sent = backends.only("CreateConversation")
    assert (sent.request.user_id, sent.request.title) == (user_id, "The lighthouse case")


@pytest.mark.parametrize("body", [{"title": "x" * 201}, {"title": "ok", "colour": "blue"}])
async def test_a_bad_conversation_is_refused_before_stories(api, backends, auth, problem, body):
    problem(await api.post(BASE, json=body, headers=auth), 422)
    assert not [c for c in backends.calls if c.method == "CreateConversation"]


async def test_conversations_are_listed_read_starred_and_deleted(api, backends, auth):
    page = (await api.get(f"{BASE}?starred=true&limit=5&cursor=abc", headers=auth)).json()
    assert page["next_cursor"] == "next-page"
    assert [item["starred"] for item in page["items"]] == [True]
    assert "messages" not in page["items"][0]
    listed = backends.only("ListConversations").request
    assert (listed.HasField("starred"), listed.starred, listed.limit, listed.cursor) == (
        True, True, 5, "abc",
    )

    got = (await api.get(f"{BASE}/{CONVERSATION_ID}", headers=auth)).json()
    assert [m["role"] for m in got["messages"]] == ["user", "assistant"]
    council = got["messages"][1]["council"]
    assert council["answers"][1]["error"] == "429 rate limited"
    assert council["reviews"][0]["label_to_model"] == {"Response A": "offline/alpha"}
    assert council["aggregate"][0] == {"model": "offline/alpha", "average_rank": 1.0, "votes": 1}
    assert council["usage"]["cost_usd"] == "0.0025"

    changed = await api.patch(
        f"{BASE}/{CONVERSATION_ID}", json={"title": "Renamed", "starred": True}, headers=auth
    )
    assert (changed.json()["title"], changed.json()["starred"]) == ("Renamed", True)
    update = backends.only("UpdateConversation").request
    assert (update.title, update.starred) == ("Renamed", True)

    deleted = await api.delete(f"{BASE}/{CONVERSATION_ID}", headers=auth)
    assert deleted.status_code == 204


async def test_a_starred_change_alone_leaves_the_title(api, backends, auth, problem):
    await api.patch(f"{BASE}/{CONVERSATION_ID}", json={"starred": False}, headers=auth)
    update = backends.only("UpdateConversation").request
    assert not update.HasField("title") and update.HasField("starred")
    problem(await api.patch(f"{BASE}/{CONVERSATION_ID}", json={"title": None}, headers=auth), 422)


async def test_an_unknown_or_foreign_conversation_is_404(api, backends, auth, problem):
    problem(await api.get(f"{BASE}/not-a-uuid", headers=auth), 404)
    backends.fail("GetConversation", grpc.StatusCode.NOT_FOUND, "conversation not found")
    problem(await api.get(f"{BASE}/{CONVERSATION_ID}", headers=auth), 404)


async def test_asking_as_json_answers_with_the_stored_message_when_every_stage_is_done(
    api, backends, auth, user_id
):
    response = await api.post(
        f"{BASE}/{CONVERSATION_ID}/messages", json={"content": "Who did it?"}, headers=auth
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["id"], body["role"], body["content"]) == (ANSWER_ID, "assistant", CHAIRMAN_TEXT)
    assert body["council"]["chairman"]["model"] == "offline/alpha"
    assert body["council"]["failed_members"] == ["offline/beta"]
    sent = backends.only("SendMessage")
    assert (sent.request.user_id, sent.request.content) == (user_id, "Who did it?")
    # A council runs three stages of model calls: its own deadline (and the
    # time stories takes to store it), not one model call's.
    deadline = COUNCIL_DEADLINE_SECONDS + GRPC_DEADLINE_SECONDS
    assert deadline - 1.5 < sent.time_remaining < deadline + 0.5


async def test_asking_as_an_event_stream_streams_each_stage(api, auth):
    response = await api.post(
        f"{BASE}/{CONVERSATION_ID}/messages",
        json={"content": "Who did it?"},
        headers={**auth, "Accept": "text/event-stream"},
    )

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert [name for name, _ in events] == [
        "message",
        "stage_started",
        "delta",
        "answer",
        "answer",
        "stage_started",
        "review",
        "aggregate",
        "stage_started",
        "chairman",
        "title",
        "message",
    ]
    assert events[0][1]["role"] == "user"
    assert events[2][1] == {"stage": 1, "model": "offline/alpha", "text": "It was "}
    assert events[6][1]["ranking"] == ["Response A"] and events[6][1]["ranking_parsed"]
    assert events[10][1] == {"title": "The lighthouse case"}
    assert events[-1][1]["id"] == ANSWER_ID and events[-1][1]["council"]["chairman"]


async def test_clarifying_questions_come_back_and_the_answers_go_on(api, backends, auth):
    backends.conversations.questions = ["Which lighthouse?", "Which year?"]
    asked = await api.post(
        f"{BASE}/{CONVERSATION_ID}/messages", json={"content": "Who did it?"}, headers=auth
    )
    assert asked.status_code == 200, asked.text
    assert asked.json() == {"questions": ["Which lighthouse?", "Which year?"]}

    streamed = await api.post(
        f"{BASE}/{CONVERSATION_ID}/messages",
        json={"content": "Who did it?"},
        headers={**auth, "Accept": "text/event-stream"},
    )
    assert [name for name, _ in sse_events(streamed.text)] == ["message", "questions"]

    answered = await api.post(
        f"{BASE}/{CONVERSATION_ID}/follow-up",
        json={"answers": ["Point Reyes", "1923"]},
        headers=auth,
    )
    assert answered.status_code == 201, answered.text
    assert [f["answer"] for f in answered.json()["council"]["follow_ups"]] == [
        "Point Reyes",
        "1923",
    ]
    assert list(backends.only("AnswerFollowUp").request.answers) == ["Point Reyes", "1923"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("messages", {"content": ""}),
        ("messages", {"content": "x" * 8_001}),
        ("follow-up", {"answers": []}),
        ("follow-up", {"answers": ["a", "b", "c", "d"]}),
    ],
)
async def test_bad_messages_are_refused_before_stories(api, backends, auth, problem, path, body):
    problem(await api.post(f"{BASE}/{CONVERSATION_ID}/{path}", json=body, headers=auth), 422)
    assert not [c for c in backends.calls if c.method in ("SendMessage", "AnswerFollowUp")]


@pytest.mark.parametrize("accept", ["application/json", "text/event-stream"])
async def test_a_busy_conversation_is_409_with_retry_after(api, backends, auth, problem, accept):
    backends.recorder.fail(
        "SendMessage",
        grpc.StatusCode.FAILED_PRECONDITION,
        "the council is answering another message of this conversation",
        reason="conversation-busy",
        retry_after=1.0,
    )

    response = await api.post(
        f"{BASE}/{CONVERSATION_ID}/messages",
        json={"content": "Who did it?"},
        headers={**auth, "Accept": accept},
    )

    body = problem(response, 409)
    assert body["type"].endswith("/conversation-busy")
    assert int(response.headers["retry-after"]) >= 1


async def test_a_council_refused_before_any_event_is_an_ordinary_problem(
    api, backends, auth, problem
):
    backends.recorder.fail(
        "AnswerFollowUp",
        grpc.StatusCode.UNAVAILABLE,
        "every member failed",
        reason="model-unavailable",
    )
    response = await api.post(
        f"{BASE}/{CONVERSATION_ID}/follow-up",
        json={"answers": ["Point Reyes"]},
        headers={**auth, "Accept": "text/event-stream"},
    )
    problem(response, 503)


async def test_a_council_that_fails_midway_ends_the_stream_with_an_error_event(
    api, backends, auth, problem
):
    backends.conversations.fail_after_question = Failure(
        grpc.StatusCode.UNAVAILABLE,
        "every member failed: offline/alpha: 401 invalid key",
        "model-unavailable",
    )
    streamed = await api.post(
        f"{BASE}/{CONVERSATION_ID}/messages",
        json={"content": "Who did it?"},
        headers={**auth, "Accept": "text/event-stream"},
    )
    assert streamed.status_code == 200
    events = sse_events(streamed.text)
    assert [name for name, _ in events] == ["message", "error"]
    assert events[1][1]["status"] == 503 and "401 invalid key" in events[1][1]["detail"]

    as_json = await api.post(
        f"{BASE}/{CONVERSATION_ID}/messages", json={"content": "Who did it?"}, headers=auth
    )
    problem(as_json, 503)


async def test_a_council_that_goes_silent_ends_the_stream_with_an_error_event(
    backends, auth, make_settings, serve
):
    """A council may outlast one model call's deadline, but not go silent that long."""
    backends.conversations.silent_after_question = True
    addresses = {
        f"{name}_addr": backends.address for name in ("users", "stories", "generation", "billing")
    }
    settings = make_settings(**addresses, generation_deadline_seconds=0.3)
    async with serve(create_app(settings)) as api:
        streamed = await api.post(
            f"{BASE}/{CONVERSATION_ID}/messages",
            json={"content": "Who did it?"},
            headers={**auth, "Accept": "text/event-stream"},
        )
    events = sse_events(streamed.text)
    assert [name for name, _ in events] == ["message", "error"]
    assert events[1][1]["status"] == 503
    assert "sent nothing for 0.3 seconds" in events[1][1]["detail"]


async def test_an_interrupted_answer_is_resumed(api, backends, auth, user_id, problem):
    path = f"{BASE}/{CONVERSATION_ID}/messages/{ANSWER_ID}/resume"
    streamed = await api.post(path, headers={**auth, "Accept": "text/event-stream"})
    assert streamed.status_code == 200, streamed.text
    names = [name for name, _ in sse_events(streamed.text)]
    assert names[0] == "message" and names[-1] == "message"
    assert "answer" not in names and "chairman" in names
    resumed = backends.only("ResumeMessage")
    assert (resumed.request.user_id, resumed.request.message_id) == (user_id, ANSWER_ID)
    deadline = COUNCIL_DEADLINE_SECONDS + GRPC_DEADLINE_SECONDS
    assert deadline - 1.5 < resumed.time_remaining < deadline + 0.5

    as_json = await api.post(path, headers=auth)
    assert as_json.status_code == 201, as_json.text
    assert as_json.json()["content"] == CHAIRMAN_TEXT

    problem(await api.post(f"{BASE}/{CONVERSATION_ID}/messages/not-a-uuid/resume", headers=auth), 404)
    other = "0" * 8 + "-0000-4000-8000-" + "0" * 12
    problem(await api.post(f"{BASE}/{CONVERSATION_ID}/messages/{other}/resume", headers=auth), 404)
