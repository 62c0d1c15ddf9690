"""Sign-in with identity providers through the gateway (fake users service)."""

from __future__ import annotations

import grpc
from fabula_gateway.app import create_app

from .fakes import FakeBackends
from .test_routes import assert_problem


async def test_providers_are_listed(api):
    response = await api.get("/v1/auth/providers")

    assert response.status_code == 200
    assert response.json() == {"providers": [{"name": "google", "display_name": "Google"}]}


async def test_start_redirects_to_the_provider_with_the_gateways_callback(api, backends):
    response = await api.get("/v1/auth/oidc/google/start")

    assert response.status_code == 302
    assert response.headers["location"] == "https://idp.example/google/authorize?state=state-1"
    sent = backends.only("StartIdentitySignIn").request
    assert sent.provider == "google"
    assert sent.redirect_uri == "http://gateway/v1/auth/oidc/google/callback"


async def test_start_answers_json_to_an_app_and_passes_its_redirect_uri(api, backends):
    response = await api.get(
        "/v1/auth/oidc/google/start",
        params={"redirect_uri": "myapp://signed-in"},
        headers={"Accept": "application/json"},
    )

    assert response.status_code == 200
    assert response.json() == {
        "authorization_url": "https://idp.example/google/authorize?state=state-1",
        "state": "state-1",
    }
    assert backends.only("StartIdentitySignIn").request.redirect_uri == "myapp://signed-in"


async def test_the_callback_uses_the_configured_public_url(
    backends: FakeBackends, serve, make_settings
):
    addresses = {
        f"{n}_addr": backends.address for n in ("users", "stories", "generation", "billing", "media")
    }
    app = create_app(make_settings(public_url="https://api.example.com/", **addresses))
    async with serve(app) as client:
        await client.get("/v1/auth/oidc/google/start")

    assert (
        backends.only("StartIdentitySignIn").request.redirect_uri
        == "https://api.example.com/v1/auth/oidc/google/callback"
    )


async def test_the_callback_exchanges_code_and_state_for_tokens(api, backends):
    response = await api.get(
        "/v1/auth/oidc/google/callback", params={"code": "code-1", "state": "state-1"}
    )

    assert response.status_code == 200, response.text
    assert response.json()["access_token"] == "access-token-from-users"
    sent = backends.only("CompleteIdentitySignIn").request
    assert (sent.provider, sent.code, sent.state, sent.redirect_uri) == (
        "google",
        "code-1",
        "state-1",
        "",
    )


async def test_a_callback_without_code_is_a_422_and_reaches_no_service(api, backends):
    response = await api.get("/v1/auth/oidc/google/callback", params={"state": "state-1"})

    assert_problem(response, 422, "validation-error")
    assert not backends.calls


async def test_a_provider_error_in_the_callback_is_a_401(api, backends):
    response = await api.get(
        "/v1/auth/oidc/google/callback", params={"error": "access_denied", "state": "s"}
    )

    assert "access_denied" in assert_problem(response, 401, "unauthenticated")["detail"]
    assert not backends.calls


async def test_a_bad_state_is_a_422(api, backends):
    backends.fail(
        "CompleteIdentitySignIn",
        grpc.StatusCode.INVALID_ARGUMENT,
        "state: unknown",
        "invalid-state",
    )

    response = await api.get("/v1/auth/oidc/google/callback", params={"code": "c", "state": "s"})

    assert_problem(response, 422, "validation-error")


async def test_identities_of_the_current_user_are_listed(api, backends, auth, user_id):
    response = await api.get("/v1/me/identities", headers=auth)

    assert response.status_code == 200
    (identity,) = response.json()["identities"]
    assert identity["provider"] == "google" and identity["email"] == "ada@example.com"
    assert backends.only("ListIdentities").request.user_id == user_id


async def test_identities_need_a_token(api):
    assert_problem(await api.get("/v1/me/identities"), 401, "unauthenticated")


async def test_unlinking_answers_204(api, backends, auth, user_id):
    response = await api.delete(
        "/v1/me/identities/0b6f3c1e-8d2a-4f5b-9c7e-1a2b3c4d5e6f", headers=auth
    )

    assert response.status_code == 204
    sent = backends.only("UnlinkIdentity").request
    assert (sent.user_id, sent.identity_id) == (user_id, "0b6f3c1e-8d2a-4f5b-9c7e-1a2b3c4d5e6f")


async def test_unlinking_the_last_way_to_sign_in_is_a_409(api, backends, auth):
    backends.fail(
        "UnlinkIdentity",
        grpc.StatusCode.FAILED_PRECONDITION,
        "this identity is the account's only way to sign in",
        "last-sign-in-method",
    )

    response = await api.delete(
        "/v1/me/identities/0b6f3c1e-8d2a-4f5b-9c7e-1a2b3c4d5e6f", headers=auth
    )

    assert "only way to sign in" in assert_problem(response, 409, "conflict")["detail"]
