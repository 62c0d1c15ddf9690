"""The shaping routes (alternatives, edits and revisions, branches) against a
fake of the stories contract: what the gateway sends and how it answers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
from fabula.stories.v1 import stories_pb2, stories_pb2_grpc
from fabula.users.v1 import users_pb2_grpc
from fabula_common.testing import free_port
from fabula_gateway.app import create_app

from .conftest import GENERATION_DEADLINE_SECONDS, GRPC_DEADLINE_SECONDS, _serve, _settings
from .fakes import (
    CONTINUATION_PIECES,
    CREATED_AT,
    FakeStories,
    FakeUsers,
    Recorder,
    segment,
    story,
    timestamp,
)
from .sse import sse_events

STORY_ID = "6a1f0c2e-9d8b-4e7a-8c6d-5b4a3f2e1d0c"
SEGMENT_ID = "9c8b7a6f-5e4d-4c3b-a2f1-0e9d8c7b6a5f"
OTHER_ID = "0b7e6f5a-4d3c-4b2a-9f8e-7d6c5b4a3f2e"
BASE = f"/v1/stories/{STORY_ID}"


def versioned(position: int, text: str, number: int, count: int, **fields) -> stories_pb2.Segment:
    message = segment(position, text, stories_pb2.SEGMENT_KIND_CONTINUATION)
    message.parent_id = SEGMENT_ID
    message.alternative_number, message.alternative_count = number, count
    message.word_count = len(text.split())
    for name, value in fields.items():
        setattr(message, name, value)
    return message


class ShapingStories(FakeStories):
    """The stories fake, with the shaping calls."""

    async def RegenerateSegment(self, request, context):
        await self.recorder.receive("RegenerateSegment", request, context)
        for piece in CONTINUATION_PIECES:
            yield stories_pb2.ContinueStoryEvent(token=stories_pb2.TextDelta(text=piece))
        yield stories_pb2.ContinueStoryEvent(
            segment=versioned(2, "".join(CONTINUATION_PIECES), 2, 2, selected=True)
        )

    async def ListAlternatives(self, request, context):
        await self.recorder.receive("ListAlternatives", request, context)
        return stories_pb2.ListAlternativesResponse(
            alternatives=[
                versioned(2, "First.", 1, 2),
                versioned(2, "Second.", 2, 2, selected=True, id=OTHER_ID),
            ]
        )

    async def SelectAlternative(self, request, context):
        await self.recorder.receive("SelectAlternative", request, context)
        message = story(request.story_id, request.user_id)
        message.head_segment_id, message.segment_count = request.alternative_id, 2
        return message

    async def EditSegment(self, request, context):
        await self.recorder.receive("EditSegment", request, context)
        return versioned(2, request.text, 1, 1, edited=True, id=request.segment_id)

    async def ListRevisions(self, request, context):
        await self.recorder.receive("ListRevisions", request, context)
        return stories_pb2.ListRevisionsResponse(
            revisions=[
                stories_pb2.SegmentRevision(
                    id=OTHER_ID,
                    segment_id=request.segment_id,
                    number=1,
                    text="The model's text.",
                    source=stories_pb2.REVISION_SOURCE_GENERATED,
                    created_at=timestamp(CREATED_AT),
                )
            ]
        )

    async def RestoreRevision(self, request, context):
        await self.recorder.receive("RestoreRevision", request, context)
        return versioned(2, "The model's text.", 1, 1, edited=True, id=request.segment_id)

    async def ListBranches(self, request, context):
        await self.recorder.receive("ListBranches", request, context)
        return stories_pb2.ListBranchesResponse(
            branches=[
                stories_pb2.Branch(
                    id=OTHER_ID,
                    length=3,
                    fork_position=3,
                    preview="Then the storm.",
                    is_current=True,
                    created_at=timestamp(CREATED_AT),
                ),
                stories_pb2.Branch(
                    id=SEGMENT_ID,
                    length=4,
                    fork_position=2,
                    preview="And the ship came home.",
                    created_at=timestamp(CREATED_AT),
                ),
            ]
        )

    async def SelectBranch(self, request, context):
        await self.recorder.receive("SelectBranch", request, context)
        message = story(request.story_id, request.user_id)
        message.head_segment_id, message.segment_count = request.branch_id, 4
        return message


@pytest.fixture
async def shaping(auth) -> AsyncIterator[tuple[httpx.AsyncClient, Recorder]]:
    """A client of the real app whose users and stories are fakes (with the
    shaping calls)."""
    recorder = Recorder()
    server = grpc.aio.server()
    users_pb2_grpc.add_UsersServiceServicer_to_server(FakeUsers(recorder), server)
    stories_pb2_grpc.add_StoriesServiceServicer_to_server(ShapingStories(recorder), server)
    address = f"127.0.0.1:{free_port()}"
    server.add_insecure_port(address)
    await server.start()
    try:
        # Room for the longest text a segment may have.
        app = create_app(
            _settings(users_addr=address, stories_addr=address, max_body_bytes=64 * 1024)
        )
        async with _serve(app) as client:
            client.headers.update(auth)
            yield client, recorder
    finally:
        await server.stop(None)


def sent(recorder: Recorder, method: str):
    """The one request of `method` the fake received, and its deadline."""
    call = recorder.only(method)
    return call.request, call.time_remaining


SEGMENT = f"{BASE}/segments/{SEGMENT_ID}"


async def test_regenerate_as_json_answers_201_with_the_new_version(shaping, user_id):
    client, recorder = shaping

    response = await client.post(f"{SEGMENT}/regenerate", json={"direction": " Darker. "})

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["alternative_number"], body["alternative_count"]) == (2, 2)
    assert body["parent_id"] == SEGMENT_ID and body["word_count"] == 7
    request, deadline = sent(recorder, "RegenerateSegment")
    assert (request.user_id, request.story_id, request.segment_id, request.direction) == (
        user_id,
        STORY_ID,
        SEGMENT_ID,
        "Darker.",
    )
    # As long as a model call may take, like continue.
    assert GRPC_DEADLINE_SECONDS + 1 < deadline <= GENERATION_DEADLINE_SECONDS + 0.5


async def test_regenerate_as_event_stream_sends_tokens_then_the_segment(shaping):
    client, recorder = shaping

    response = await client.post(
        f"{SEGMENT}/regenerate",
        headers={"Accept": "text/event-stream", "Idempotency-Key": "again-1"},
    )

    assert response.status_code == 200
    events = sse_events(response.text)
    assert events[:-1] == [("token", {"text": piece}) for piece in CONTINUATION_PIECES]
    assert events[-1][0] == "segment" and events[-1][1]["alternative_number"] == 2
    request, _ = sent(recorder, "RegenerateSegment")
    assert (request.direction, request.idempotency_key) == ("", "again-1")


async def test_continue_passes_after_segment_id_on(shaping):
    client, recorder = shaping

    response = await client.post(
        f"{BASE}/continue", json={"after_segment_id": SEGMENT_ID.upper()}
    )

    assert response.status_code == 201, response.text
    request, _ = sent(recorder, "ContinueStory")
    assert request.after_segment_id == SEGMENT_ID


async def test_alternatives_list_the_versions_and_the_selected_one(shaping, user_id):
    client, recorder = shaping

    response = await client.get(f"{SEGMENT}/alternatives")

    assert response.status_code == 200, response.text
    body = response.json()
    assert [item["text"] for item in body["items"]] == ["First.", "Second."]
    assert body["selected_id"] == OTHER_ID
    request, deadline = sent(recorder, "ListAlternatives")
    assert (request.user_id, request.story_id, request.segment_id) == (
        user_id,
        STORY_ID,
        SEGMENT_ID,
    )
    assert deadline <= GRPC_DEADLINE_SECONDS + 0.5


async def test_selecting_an_alternative_answers_the_story_on_its_new_path(shaping):
    client, recorder = shaping

    response = await client.post(f"{SEGMENT}/alternatives/{OTHER_ID}/select")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["head_segment_id"] == OTHER_ID and "segments" not in body
    request, _ = sent(recorder, "SelectAlternative")
    assert (request.segment_id, request.alternative_id) == (SEGMENT_ID, OTHER_ID)


async def test_edit_sends_the_text_as_given(shaping):
    client, recorder = shaping

    response = await client.patch(SEGMENT, json={"text": "  By hand.\n"})

    assert response.status_code == 200, response.text
    assert response.json()["edited"] is True
    request, _ = sent(recorder, "EditSegment")
    assert (request.segment_id, request.text) == (SEGMENT_ID, "  By hand.\n")


@pytest.mark.parametrize("body", [{}, {"text": ""}, {"text": "x" * 20_001}, {"text": "a\x00"}])
async def test_an_invalid_edit_is_a_422_and_reaches_no_service(shaping, problem, body):
    client, recorder = shaping

    problem(await client.patch(SEGMENT, json=body), 422)

    assert [c for c in recorder.calls if c.method == "EditSegment"] == []


async def test_revisions_and_restore(shaping):
    client, recorder = shaping

    listed = await client.get(f"{SEGMENT}/revisions")
    restored = await client.post(f"{SEGMENT}/revisions/{OTHER_ID}/restore")

    assert listed.status_code == 200, listed.text
    [revision] = listed.json()["items"]
    assert (revision["number"], revision["source"]) == (1, "generated")
    assert restored.status_code == 200 and restored.json()["text"] == "The model's text."
    request, _ = sent(recorder, "RestoreRevision")
    assert (request.segment_id, request.revision_id) == (SEGMENT_ID, OTHER_ID)


async def test_branches_and_selecting_one(shaping):
    client, recorder = shaping

    listed = await client.get(f"{BASE}/branches")
    selected = await client.post(f"{BASE}/branches/{SEGMENT_ID}/select")

    assert listed.status_code == 200, listed.text
    assert [(b["id"], b["fork_position"], b["is_current"]) for b in listed.json()["items"]] == [
        (OTHER_ID, 3, True),
        (SEGMENT_ID, 2, False),
    ]
    assert selected.status_code == 200, selected.text
    assert selected.json()["head_segment_id"] == SEGMENT_ID
    request, _ = sent(recorder, "SelectBranch")
    assert request.branch_id == SEGMENT_ID


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"{BASE}/segments/not-a-uuid/alternatives"),
        ("POST", f"{SEGMENT}/alternatives/not-a-uuid/select"),
        ("POST", f"{SEGMENT}/revisions/not-a-uuid/restore"),
        ("POST", f"{BASE}/branches/not-a-uuid/select"),
    ],
)
async def test_a_malformed_id_is_a_404_and_reaches_no_service(shaping, problem, method, path):
    client, recorder = shaping

    problem(await client.request(method, path), 404)

    assert [c.method for c in recorder.calls if c.method != "Authenticate"] == []


@pytest.mark.parametrize(
    ("method", "rpc", "path", "body"),
    [
        ("PATCH", "EditSegment", SEGMENT, {"text": "x"}),
        ("POST", "SelectAlternative", f"{SEGMENT}/alternatives/{OTHER_ID}/select", None),
        ("POST", "RestoreRevision", f"{SEGMENT}/revisions/{OTHER_ID}/restore", None),
        ("POST", "SelectBranch", f"{BASE}/branches/{SEGMENT_ID}/select", None),
        ("POST", "RegenerateSegment", f"{SEGMENT}/regenerate", None),
    ],
)
async def test_a_busy_story_is_a_409_with_retry_after(shaping, problem, method, rpc, path, body):
    client, recorder = shaping
    recorder.fail(
        rpc,
        grpc.StatusCode.FAILED_PRECONDITION,
        "a segment is being written for this story",
        reason="story-busy",
    )

    response = await client.request(method, path, json=body)

    assert problem(response, 409)["type"].endswith("/story-busy")
    assert int(response.headers["retry-after"]) >= 1


async def test_another_users_segment_is_a_404(shaping, problem):
    client, recorder = shaping
    recorder.fail("ListRevisions", grpc.StatusCode.NOT_FOUND, "segment not found", "not-found")

    problem(await client.get(f"{SEGMENT}/revisions"), 404)
