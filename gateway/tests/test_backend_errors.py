"""Each kind of backend refusal, sent over a real gRPC channel, is its own problem.

Stand-in stories and users servers answer through the real server
interceptor, so the statuses are exactly what the services send (the e2e and
users tests drive the real services into the same states); the stories one
also sends more than its channel allows, which only gRPC itself refuses, with
no reason of ours.
"""

from __future__ import annotations

import grpc
import pytest
from fabula.stories.v1 import stories_pb2, stories_pb2_grpc
from fabula.users.v1 import users_pb2_grpc
from fabula_common.errors import StoryBusy, StoryComplete, TooBusy, UpstreamError
from fabula_common.grpc_server import ServerInterceptor
from fabula_common.testing import free_port
from fabula_gateway.app import create_app
from fabula_gateway.principals import Principal

from .sse import sse_events

BUSY = "7d3e9c1a-2b4f-4a6e-8d0c-1f2e3a4b5c6d"
COMPLETE = "8e4f0d2b-3c5a-4b7f-9e1d-2a3b4c5d6e7f"
FAILS_MIDWAY = "9f5a1e3c-4d6b-4c8a-8f2e-3b4c5d6e7f80"
# Larger than the stand-in may send: gRPC itself refuses it.
TOO_LARGE = "a06b2f4d-5e7c-4d9b-9a3f-4c5d6e7f8091"
SEND_LIMIT_BYTES = 1024
BASE = "https://fabula.dev/problems/"


def assert_problem(response, status: int, problem_type: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["type"], body["status"]) == (BASE + problem_type, status)
    return body


class StandInStories(stories_pb2_grpc.StoriesServiceServicer):
    async def ContinueStory(self, request, context):
        if request.story_id == FAILS_MIDWAY:
            yield stories_pb2.ContinueStoryEvent(token=stories_pb2.TextDelta(text="Once"))
            raise UpstreamError(
                "the model provider is rate-limiting", reason=UpstreamError.RATE_LIMITED
            )
        self._refuse(request.story_id)

    async def EndStory(self, request, context):
        self._refuse(request.story_id)

    async def GetStory(self, request, context):
        return stories_pb2.Story(id=request.story_id, title="x" * (2 * SEND_LIMIT_BYTES))

    @staticmethod
    def _refuse(story_id: str) -> None:
        if story_id == BUSY:
            raise StoryBusy(
                "a segment is already being written for this story; retry when it is done",
                metadata={"story_id": story_id},
            )
        raise StoryComplete("story is complete", metadata={"story_id": story_id})


@pytest.fixture
async def stories_address():
    server = grpc.aio.server(
        interceptors=[ServerInterceptor("stories")],
        options=[("grpc.max_send_message_length", SEND_LIMIT_BYTES)],
    )
    stories_pb2_grpc.add_StoriesServiceServicer_to_server(StandInStories(), server)
    address = f"127.0.0.1:{free_port()}"
    server.add_insecure_port(address)
    await server.start()
    yield address
    await server.stop(None)


class StandInBusyUsers(users_pb2_grpc.UsersServiceServicer):
    """A users service in a login storm: its password-hash queue is full."""

    async def Login(self, request, context):
        raise TooBusy("too many logins at once; retry shortly")

    async def Register(self, request, context):
        raise TooBusy("too many logins at once; retry shortly")


@pytest.fixture
async def busy_users_address():
    server = grpc.aio.server(interceptors=[ServerInterceptor("users")])
    users_pb2_grpc.add_UsersServiceServicer_to_server(StandInBusyUsers(), server)
    address = f"127.0.0.1:{free_port()}"
    server.add_insecure_port(address)
    await server.start()
    yield address
    await server.stop(None)


@pytest.fixture
async def gateway(stories_address, make_settings, serve, user_id):
    app = create_app(make_settings(stories_addr=stories_address))
    # No users service here: its earlier answer for the account is used.
    app.state.principals.remember_user(Principal(user_id))
    async with serve(app) as client:
        yield client


@pytest.mark.parametrize(
    ("action", "accept"),
    [
        ("continue", "application/json"),
        # Refused before any text: a real 409, not a 200 stream with an error event.
        ("continue", "text/event-stream"),
        ("end", "application/json"),
    ],
)
async def test_a_busy_story_is_a_409_story_busy_with_retry_after(gateway, auth, action, accept):
    response = await gateway.post(
        f"/v1/stories/{BUSY}/{action}", json={}, headers={**auth, "Accept": accept}
    )

    body = assert_problem(response, 409, "story-busy")
    assert "already being written" in body["detail"]
    assert response.headers["retry-after"] == "1"


@pytest.mark.parametrize("action", ["continue", "end"])
async def test_a_complete_story_is_a_409_story_complete_without_retry_after(gateway, auth, action):
    response = await gateway.post(f"/v1/stories/{COMPLETE}/{action}", json={}, headers=auth)

    body = assert_problem(response, 409, "story-complete")
    assert body["detail"] == "story is complete"
    assert "retry-after" not in response.headers


async def test_a_transport_limit_is_a_500_not_a_quota_nor_rate_limiting(gateway, auth):
    response = await gateway.get(f"/v1/stories/{TOO_LARGE}", headers=auth)

    body = assert_problem(response, 500, "internal-error")
    assert "retry-after" not in response.headers
    assert "message" not in body["detail"].lower()


async def test_a_failure_after_the_first_text_is_the_same_problem_as_an_event(gateway, auth):
    response = await gateway.post(
        f"/v1/stories/{FAILS_MIDWAY}/continue",
        json={},
        headers={**auth, "Accept": "text/event-stream"},
    )

    assert response.status_code == 200
    events = sse_events(response.text)
    assert events[0][0] == "token"
    [problem] = [data for kind, data in events if kind == "error"]
    assert problem["type"] == BASE + "model-unavailable"
    assert (problem["status"], problem["detail"]) == (503, "the model provider is rate-limiting")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/auth/login", {"email": "ada@example.com", "password": "correct horse"}),
        ("/v1/auth/register", {"email": "ada@example.com", "password": "correct horse"}),
    ],
)
async def test_a_login_storm_refusal_is_a_503_too_busy_with_retry_after(
    busy_users_address, make_settings, serve, path, body
):
    async with serve(create_app(make_settings(users_addr=busy_users_address))) as gateway:
        response = await gateway.post(path, json=body)

    problem = assert_problem(response, 503, "too-busy")
    assert problem["detail"] == "too many logins at once; retry shortly"
    assert response.headers["retry-after"] == "1"
