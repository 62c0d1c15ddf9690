"""Export and deletion routes against fakes of the services."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile

import grpc
import jwt
from fabula_common.tokens import ALGORITHM, AUDIENCE

from .conftest import GENERATION_DEADLINE_SECONDS, GRPC_DEADLINE_SECONDS
from .fakes import FakeBackends


def problem(response, status: int, type_suffix: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    if type_suffix is not None:
        assert body["type"].endswith(type_suffix), body
    return body


async def test_export_is_one_json_document_with_every_service_part(
    api, backends: FakeBackends, auth, user_id
):
    response = await api.get("/v1/me/export", headers=auth)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert "attachment" in response.headers["content-disposition"]
    document = response.json()
    assert document["format"] == "fabula-export/1" and document["user_id"] == user_id
    assert document["users"]["user"]["email"] == "ada@example.com"
    # Keys are listed without their secrets: the contract has none to give.
    assert document["users"]["api_keys"][0]["prefix"] == "fab_live_3kF9"
    assert [s["segments"][0]["text"] for s in document["stories"]] == [
        "Story 0 began.",
        "Story 1 began.",
    ]
    assert document["billing"]["usage"]["plan"]
    # What else the user keeps: council conversations with their messages,
    # projects with their narratives' texts, pictures and photo records.
    [conversation] = document["conversations"]
    assert [m["role"] for m in conversation["messages"]] == ["user", "assistant"]
    # Every page of projects (the fake has two), each with its narratives' texts.
    assert len(document["projects"]) == 2
    assert all(n["text"] for p in document["projects"] for n in p["narratives"])
    assert len(document["pictures"]["drawings"]) == 2
    assert len(document["pictures"]["picture_stories"]) == 1
    assert document["photos"][0]["status"] == "PHOTO_STATUS_COMPLETED"
    streams = {"ExportStories", "ExportConversations"}
    for method in ("ExportUser", "ExportStories", "ExportConversations", "GetUsage", "ListPhotos"):
        call = backends.only(method)
        assert call.request.user_id == user_id
        # Every call has a deadline; the streams the longer one (the clocks of
        # the two ends differ by a little).
        limit = GENERATION_DEADLINE_SECONDS if method in streams else GRPC_DEADLINE_SECONDS
        assert call.time_remaining is not None and 0 < call.time_remaining < limit + 0.5


async def test_export_as_zip_has_one_json_file_per_service(api, auth, user_id):
    response = await api.get("/v1/me/export?format=zip", headers=auth)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert sorted(archive.namelist()) == [
        "billing.json",
        "conversations.json",
        "export.json",
        "photos.json",
        "pictures.json",
        "projects.json",
        "stories.json",
        "users.json",
    ]
    assert json.loads(archive.read("export.json"))["user_id"] == user_id
    assert len(json.loads(archive.read("stories.json"))) == 2
    assert json.loads(archive.read("users.json"))["user"]["id"] == user_id


async def test_a_service_down_fails_the_export_with_503_not_a_partial_one(
    api, backends: FakeBackends, auth
):
    backends.fail("ExportStories", grpc.StatusCode.UNAVAILABLE, "stories is down")

    response = await api.get("/v1/me/export", headers=auth)

    problem(response, 503, "service-unavailable")
    assert "Retry-After" in response.headers


async def test_an_unknown_format_is_a_422(api, auth):
    problem(await api.get("/v1/me/export?format=xml", headers=auth), 422)


async def test_export_needs_a_token(api):
    problem(await api.get("/v1/me/export"), 401)


async def test_delete_passes_the_password_and_the_tokens_issue_time_on(
    api, backends: FakeBackends, auth, user_id
):
    response = await api.request(
        "DELETE", "/v1/me", headers=auth, json={"password": "correct horse battery"}
    )

    assert response.status_code == 204, response.text
    request = backends.only("DeleteUser").request
    assert request.user_id == user_id and request.password == "correct horse battery"
    issued = request.fresh_sign_in_at.ToDatetime(tzinfo=dt.UTC)
    assert abs((dt.datetime.now(dt.UTC) - issued).total_seconds()) < 60


async def test_delete_without_a_body_sends_no_password_and_the_tokens_iat(
    api, backends: FakeBackends, settings, user_id
):
    issued_at = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    token = jwt.encode(
        {
            "sub": user_id,
            "iss": settings.jwt_issuer,
            "aud": AUDIENCE,
            "iat": issued_at,
            "exp": dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5),
            "typ": "access",
        },
        settings.jwt_secret.get_secret_value(),
        algorithm=ALGORITHM,
    )

    response = await api.delete("/v1/me", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 204, response.text
    request = backends.only("DeleteUser").request
    assert request.password == ""
    assert request.fresh_sign_in_at.ToDatetime(tzinfo=dt.UTC) == issued_at


async def test_a_refused_password_is_a_401(api, backends: FakeBackends, auth):
    backends.fail(
        "DeleteUser", grpc.StatusCode.UNAUTHENTICATED, "password: wrong password",
        "invalid-credentials",
    )

    response = await api.request("DELETE", "/v1/me", headers=auth, json={"password": "nope"})

    assert problem(response, 401)["detail"] == "password: wrong password"


async def test_delete_refuses_unknown_fields_and_non_json(api, auth):
    problem(await api.request("DELETE", "/v1/me", headers=auth, json={"pasword": "x"}), 422)
    problem(
        await api.request(
            "DELETE", "/v1/me", headers={**auth, "Content-Type": "text/plain"}, content="x"
        ),
        415,
    )
