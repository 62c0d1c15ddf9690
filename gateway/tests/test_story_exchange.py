"""GET /v1/stories/{id}/export through the real app, against fakes of the
users and stories contracts: what a client gets and what stories is asked."""

from __future__ import annotations

import grpc
import pytest
from fabula.stories.v1 import stories_pb2
from fabula_gateway.stories.exchange import AUTHOR_NAME_TIMEOUT_SECONDS, content_disposition

from .conftest import GRPC_DEADLINE_SECONDS
from .fakes import FakeBackends

STORY_ID = "6a1f0c2e-9d8b-4e7a-8c6d-5b4a3f2e1d0c"
EXPORT = f"/v1/stories/{STORY_ID}/export"


@pytest.mark.parametrize(
    ("query", "fmt", "content_type", "filename"),
    [
        (
            "",
            stories_pb2.EXPORT_FORMAT_MARKDOWN,
            "text/markdown; charset=utf-8",
            "the-silent-ferry.md",
        ),
        (
            "?format=md",
            stories_pb2.EXPORT_FORMAT_MARKDOWN,
            "text/markdown; charset=utf-8",
            "the-silent-ferry.md",
        ),
        (
            "?format=txt",
            stories_pb2.EXPORT_FORMAT_TEXT,
            "text/plain; charset=utf-8",
            "the-silent-ferry.txt",
        ),
        (
            "?format=epub",
            stories_pb2.EXPORT_FORMAT_EPUB,
            "application/epub+zip",
            "the-silent-ferry.epub",
        ),
    ],
)
async def test_export_streams_the_file_as_a_named_attachment(
    api, backends: FakeBackends, auth, user_id, query, fmt, content_type, filename
):
    backends.users.full_name = "Ada Lovelace"

    response = await api.get(EXPORT + query, headers=auth)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == content_type
    assert response.headers["content-disposition"] == (
        f"attachment; filename=\"{filename}\"; filename*=UTF-8''{filename}"
    )
    assert response.content == b"by Ada Lovelace|second|third"
    assert response.headers["content-length"] == str(len(response.content))
    request = backends.only("ExportStory").request
    assert (request.user_id, request.story_id, request.format) == (user_id, STORY_ID, fmt)
    assert backends.only("GetUser").request.user_id == user_id


async def test_an_account_without_a_name_exports_as_fabula_writer_never_its_email(
    api, backends: FakeBackends, auth
):
    response = await api.get(EXPORT, headers=auth)

    assert response.status_code == 200, response.text
    assert backends.only("ExportStory").request.author_name == "Fabula writer"
    assert b"@" not in response.content


async def test_the_export_goes_on_without_the_name_when_users_fails(
    api, backends: FakeBackends, auth
):
    backends.fail("GetUser", grpc.StatusCode.UNAVAILABLE, "users is down")

    response = await api.get(EXPORT, headers=auth)

    assert response.status_code == 200, response.text
    assert backends.only("ExportStory").request.author_name == "Fabula writer"


async def test_both_calls_carry_a_deadline(api, backends: FakeBackends, auth):
    response = await api.get(EXPORT, headers={**auth, "X-Request-ID": "export-7"})

    assert response.status_code == 200
    name, export = backends.only("GetUser"), backends.only("ExportStory")
    assert 0 < name.time_remaining <= AUTHOR_NAME_TIMEOUT_SECONDS + 0.5
    assert GRPC_DEADLINE_SECONDS - 1.5 < export.time_remaining < GRPC_DEADLINE_SECONDS + 0.5
    assert export.metadata["x-request-id"] == "export-7"


async def test_an_unknown_format_is_a_422_and_nothing_is_asked(
    api, backends: FakeBackends, auth, problem
):
    response = await api.get(EXPORT + "?format=pdf", headers=auth)

    problem(response, 422)
    assert not [call for call in backends.calls if call.method == "ExportStory"]


async def test_another_users_story_is_a_404(api, backends: FakeBackends, auth, problem):
    backends.fail("ExportStory", grpc.StatusCode.NOT_FOUND, "story not found", "not-found")

    response = await api.get(EXPORT, headers=auth)

    assert problem(response, 404)["detail"] == "story not found"


async def test_export_needs_authentication(api, problem):
    problem(await api.get(EXPORT), 401)


def test_content_disposition_keeps_other_names_safe():
    assert content_disposition('été "x".md') == (
        "attachment; filename=\"?t? _x_.md\"; filename*=UTF-8''%C3%A9t%C3%A9%20%22x%22.md"
    )
