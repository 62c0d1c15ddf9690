"""Profile, email verification, password reset and login throttling routes,
against the fake users service: what they send and how they answer."""

from __future__ import annotations

import grpc
import pytest

from .fakes import FakeBackends


def assert_problem(response, status: int, problem_type: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    if problem_type is not None:
        assert body["type"] == f"https://fabula.dev/problems/{problem_type}", body
    return body


async def test_patch_me_sends_only_the_fields_given(api, backends: FakeBackends, auth, user_id):
    response = await api.patch(
        "/v1/me",
        json={
            "avatar_url": "https://cdn.example.com/a.png",
            "birthdate": "2015-06-01",
            "full_name": None,
        },
        headers=auth,
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["avatar_url"], body["birthdate"], body["full_name"]) == (
        "https://cdn.example.com/a.png",
        "2015-06-01",
        None,
    )
    sent = backends.only("UpdateProfile").request
    assert sent.user_id == user_id
    assert list(sent.fields) == ["avatar_url", "birthdate", "full_name"]
    assert (sent.avatar_url, sent.birthdate, sent.full_name) == (
        "https://cdn.example.com/a.png",
        "2015-06-01",
        "",
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"locale": "fr"}, "locale"),
        ({"locale": None}, "locale"),
        ({"birthdate": "01.06.2015"}, "birthdate"),
        ({"email": "new@example.com"}, "email"),
    ],
)
async def test_patch_me_refuses_bad_fields(api, backends: FakeBackends, auth, body, field):
    response = await api.patch("/v1/me", json=body, headers=auth)

    problem = assert_problem(response, 422, "validation-error")
    assert field in str(problem["errors"])
    assert not [call for call in backends.calls if call.method == "UpdateProfile"]


async def test_a_bad_value_the_service_refuses_is_a_422(api, backends: FakeBackends, auth):
    backends.fail(
        "UpdateProfile",
        grpc.StatusCode.INVALID_ARGUMENT,
        "birthdate: must not be in the future",
    )
    response = await api.patch("/v1/me", json={"birthdate": "2999-01-01"}, headers=auth)

    assert assert_problem(response, 422)["detail"] == "birthdate: must not be in the future"


async def test_profile_routes_need_a_token(api):
    for method, path in [
        ("PATCH", "/v1/me"),
        ("POST", "/v1/me/email"),
        ("POST", "/v1/auth/verify-email/request"),
    ]:
        response = await api.request(method, path, json={})
        assert_problem(response, 401)


async def test_changing_the_email_sends_the_password(api, backends: FakeBackends, auth):
    response = await api.post(
        "/v1/me/email",
        json={"new_email": "ada@example.org", "password": "correct horse"},
        headers=auth,
    )

    assert response.status_code == 200, response.text
    assert response.json()["email"] == "ada@example.org"
    sent = backends.only("ChangeEmail").request
    assert (sent.new_email, sent.password) == ("ada@example.org", "correct horse")


async def test_verification_routes(api, backends: FakeBackends, auth, user_id):
    requested = await api.post("/v1/auth/verify-email/request", headers=auth)
    verified = await api.post("/v1/auth/verify-email", json={"token": "tok-1"})

    assert (requested.status_code, requested.content) == (202, b"")
    assert backends.only("RequestEmailVerification").request.user_id == user_id
    assert verified.status_code == 200 and verified.json()["is_verified"] is True
    assert backends.only("VerifyEmail").request.token == "tok-1"


async def test_an_invalid_token_is_a_422(api, backends: FakeBackends):
    backends.fail(
        "VerifyEmail",
        grpc.StatusCode.INVALID_ARGUMENT,
        "token: unknown, already used or expired",
        reason="invalid-token",
    )
    response = await api.post("/v1/auth/verify-email", json={"token": "used"})

    assert assert_problem(response, 422)["detail"].startswith("token:")


async def test_already_verified_is_a_409(api, backends: FakeBackends, auth):
    backends.fail(
        "RequestEmailVerification",
        grpc.StatusCode.FAILED_PRECONDITION,
        "the email address is already verified",
        reason="already-verified",
    )
    response = await api.post("/v1/auth/verify-email/request", headers=auth)

    assert_problem(response, 409)


async def test_asking_again_within_a_minute_is_a_429_with_retry_after(
    api, backends: FakeBackends, auth
):
    backends.recorder.fail(
        "RequestEmailVerification",
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "a verification email was sent less than a minute ago",
        reason="rate-limited",
        retry_after=60,
    )
    response = await api.post("/v1/auth/verify-email/request", headers=auth)

    assert assert_problem(response, 429)["detail"].startswith("a verification email was sent")
    assert response.headers["retry-after"] == "60"


async def test_password_reset_routes(api, backends: FakeBackends):
    requested = await api.post(
        "/v1/auth/password-reset/request", json={"email": "nobody@example.com"}
    )
    reset = await api.post(
        "/v1/auth/password-reset", json={"token": "tok-2", "new_password": "a new passphrase"}
    )
    short = await api.post(
        "/v1/auth/password-reset", json={"token": "tok-2", "new_password": "short"}
    )

    assert requested.status_code == 202
    assert backends.only("RequestPasswordReset").request.email == "nobody@example.com"
    assert (reset.status_code, reset.content) == (204, b"")
    sent = backends.only("ResetPassword").request
    assert (sent.token, sent.new_password) == ("tok-2", "a new passphrase")
    assert_problem(short, 422, "validation-error")


async def test_login_sends_the_client_address(api, backends: FakeBackends):
    await api.post("/v1/auth/login", json={"email": "ada@example.com", "password": "x"})

    assert backends.only("Login").request.client_ip == "127.0.0.1"


async def test_too_many_failed_logins_is_a_429_with_retry_after(api, backends: FakeBackends):
    backends.fail(
        "Login",
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "too many failed logins; try again later",
        reason="too-many-attempts",
    )
    response = await api.post(
        "/v1/auth/login", json={"email": "ada@example.com", "password": "right one"}
    )

    problem = assert_problem(response, 429, "too-many-attempts")
    assert problem["detail"] == "too many failed logins; try again later"
    assert response.headers["Retry-After"]
