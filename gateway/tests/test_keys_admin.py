"""API keys as credentials, the account check's cache, and the admin routes,
through the real app against fakes of the services."""

from __future__ import annotations

import grpc
import pytest
from fabula.users.v1 import users_pb2
from fabula_common.tokens import issue_access_token
from fabula_gateway.app import create_app

from .fakes import FakeBackends

BASE = "https://fabula.dev/problems/"
KEY = "fab_3f9c0e6a5b3d_readonly-secret"
USER = "6f1c2a8e-3b7d-4c59-9e0a-1d2f3a4b5c6d"
OTHER = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


def problem(response, status: int, kind: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == BASE + kind
    return body


@pytest.fixture
def read_key(backends: FakeBackends) -> dict[str, str]:
    backends.users.api_keys = {
        KEY: users_pb2.Principal(user_id=USER, scopes=["read"], api_key_id="k1")
    }
    return {"Authorization": f"Bearer {KEY}"}


async def test_a_read_only_key_lists_stories_but_cannot_create_one(api, backends, read_key):
    listed = await api.get("/v1/stories", headers=read_key)
    assert listed.status_code == 200, listed.text
    assert backends.only("ListStories").request.user_id == USER

    created = await api.post("/v1/stories", json={"genre": "mystery"}, headers=read_key)
    problem(created, 403, "insufficient-scope")
    assert 'error="insufficient_scope"' in created.headers["www-authenticate"]
    assert not [c for c in backends.calls if c.method == "CreateStory"]
    # One Authenticate for both requests: the answer is cached.
    assert len([c for c in backends.calls if c.method == "Authenticate"]) == 1


async def test_a_write_key_may_write(api, backends):
    backends.users.api_keys = {KEY: users_pb2.Principal(user_id=USER, scopes=["read", "write"])}
    created = await api.post(
        "/v1/stories", json={"genre": "mystery"}, headers={"Authorization": f"Bearer {KEY}"}
    )
    assert created.status_code == 201, created.text


async def test_an_unknown_key_is_a_401(api, backends):
    response = await api.get("/v1/stories", headers={"Authorization": "Bearer fab_nope_x"})
    problem(response, 401, "unauthenticated")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_keys_are_managed_with_an_access_token_not_a_key(api, backends, auth, read_key):
    created = await api.post(
        "/v1/me/api-keys",
        json={"name": "nightly", "scopes": ["read"], "expires_at": "2030-01-01T00:00:00Z"},
        headers=auth,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["key"] == "fab_3f9c0e6a5b3d_secret" and body["scopes"] == ["read"]
    request = backends.only("CreateApiKey").request
    assert (request.user_id, request.name, request.expires_at.seconds) == (
        USER,
        "nightly",
        1893456000,
    )
    listed = await api.get("/v1/me/api-keys", headers=auth)
    assert "key" not in listed.json()["items"][0]
    key_id = listed.json()["items"][0]["id"]
    revoked = await api.delete(f"/v1/me/api-keys/{key_id}", headers=auth)
    assert revoked.status_code == 204

    problem(await api.get("/v1/me/api-keys", headers=read_key), 403, "forbidden")
    problem(await api.delete("/v1/me/api-keys/not-a-uuid", headers=auth), 404, "not-found")
    bad = await api.post("/v1/me/api-keys", json={"name": "x", "scopes": ["admin"]}, headers=auth)
    problem(bad, 422, "validation-error")


async def test_a_refused_account_is_a_401_and_users_down_keeps_the_last_answer(
    backends, make_settings, serve
):
    addresses = {f"{n}_addr": backends.address for n in ("users", "stories", "billing")}
    settings = make_settings(auth_cache_ttl_seconds=0.001, **addresses)
    headers = {"Authorization": f"Bearer {issue_access_token(settings, USER)[0]}"}
    async with serve(create_app(settings)) as client:
        assert (await client.get("/v1/usage", headers=headers)).status_code == 200
        # Users unreachable: the earlier answer stands.
        backends.fail("Authenticate", grpc.StatusCode.UNAVAILABLE, "down")
        assert (await client.get("/v1/usage", headers=headers)).status_code == 200
        # Deactivated: the next check refuses.
        backends.fail("Authenticate", grpc.StatusCode.UNAUTHENTICATED, "account deactivated")
        problem(await client.get("/v1/usage", headers=headers), 401, "unauthenticated")
        # Another account, never seen, while users is down: 503.
        backends.fail("Authenticate", grpc.StatusCode.UNAVAILABLE, "down")
        other = {"Authorization": f"Bearer {issue_access_token(settings, OTHER)[0]}"}
        problem(await client.get("/v1/usage", headers=other), 503, "service-unavailable")


async def test_a_known_account_is_checked_again_with_a_short_deadline(
    backends, make_settings, serve
):
    """The first check of an account waits the usual deadline; a check again
    (an earlier answer to fall back on) at most a second, so a hung users
    service costs a request that much."""
    addresses = {f"{n}_addr": backends.address for n in ("users", "stories", "billing")}
    settings = make_settings(auth_cache_ttl_seconds=0.001, **addresses)
    headers = {"Authorization": f"Bearer {issue_access_token(settings, USER)[0]}"}
    async with serve(create_app(settings)) as client:
        for _ in range(2):
            assert (await client.get("/v1/usage", headers=headers)).status_code == 200
        # Users too slow for the check again: the earlier answer stands.
        backends.fail("Authenticate", grpc.StatusCode.DEADLINE_EXCEEDED, "too late")
        assert (await client.get("/v1/usage", headers=headers)).status_code == 200
    checks = [call for call in backends.calls if call.method == "Authenticate"]
    first, again, late = (call.time_remaining for call in checks)
    assert first > 2  # GRPC_DEADLINE_SECONDS is 3 here
    assert again < 1.5 and late < 1.5  # RECHECK_TIMEOUT_SECONDS, rounded up by gRPC


async def test_the_cache_is_bounded(backends, make_settings, serve):
    addresses = {f"{n}_addr": backends.address for n in ("users", "stories", "billing")}
    settings = make_settings(auth_cache_max_entries=2, **addresses)
    app = create_app(settings)
    async with serve(app) as client:
        for user in (USER, OTHER, "1d2f3a4b-5c6d-4e7f-8a9b-0c1d2e3f4a5b"):
            token = issue_access_token(settings, user)[0]
            await client.get("/v1/usage", headers={"Authorization": f"Bearer {token}"})
    assert len(app.state.principals) == 2


# ------------------------------------------------------------ admin


async def test_admin_routes_refuse_non_superusers(api, backends, auth):
    for method, path in [
        ("GET", "/v1/admin/users"),
        ("GET", f"/v1/admin/users/{OTHER}"),
        ("POST", f"/v1/admin/users/{OTHER}/deactivate"),
        ("GET", "/v1/admin/audit"),
    ]:
        problem(await api.request(method, path, headers=auth), 403, "forbidden")
    assert not [c for c in backends.calls if c.method.startswith("Admin")]


async def test_superusers_administer(api, backends, auth):
    backends.users.superusers = {USER}
    listed = await api.get("/v1/admin/users?q=ada&limit=5", headers=auth)
    assert listed.status_code == 200, listed.text
    assert listed.json()["next_cursor"] == "next-page"
    request = backends.only("AdminListUsers").request
    assert (request.actor_id, request.query, request.limit) == (USER, "ada", 5)

    detail = await api.get(f"/v1/admin/users/{OTHER}", headers=auth)
    assert detail.json()["usage"]["plan"] == "free" and detail.json()["user"]["id"] == OTHER

    deactivated = await api.post(
        f"/v1/admin/users/{OTHER}/deactivate", json={"reason": "spam"}, headers=auth
    )
    assert deactivated.json()["is_active"] is False
    sent = backends.only("AdminSetActive").request
    assert (sent.actor_id, sent.user_id, sent.active, sent.reason) == (USER, OTHER, False, "spam")

    plan = await api.put(
        f"/v1/admin/users/{OTHER}/plan", json={"plan": "pro", "reason": "comp"}, headers=auth
    )
    assert plan.status_code == 200 and plan.json()["plan"] == "pro"
    set_plan = backends.only("SetPlan").request
    assert (set_plan.user_id, set_plan.actor, set_plan.reason) == (OTHER, USER, "comp")
    recorded = backends.only("AdminRecordAction").request
    assert recorded.action == "plan.set"
    assert dict(recorded.details) == {"plan": "pro", "reason": "comp"}

    granted = await api.post(
        f"/v1/admin/users/{OTHER}/superuser", json={"superuser": True}, headers=auth
    )
    assert granted.json()["is_superuser"] is True
    audit = await api.get("/v1/admin/audit", headers=auth)
    assert audit.json()["items"][0]["details"] == {"via": "command"}
    assert audit.json()["items"][0]["actor_id"] is None

    # Revoked meanwhile (within the cache time): users refuses, still a 403.
    backends.fail("AdminListAudit", grpc.StatusCode.PERMISSION_DENIED, "only superusers")
    problem(await api.get("/v1/admin/audit", headers=auth), 403, "forbidden")


async def test_a_login_forgets_an_earlier_refusal_of_the_account(api, backends, settings):
    """A reactivated user logs in: the gateway must not keep answering 401
    from a refusal it cached while the account was deactivated."""
    from fabula_gateway.principals import Refused

    cache = api._transport.app.state.principals  # type: ignore[attr-defined]
    login = await api.post(
        "/v1/auth/login", json={"email": "ada@example.com", "password": "correct horse battery"}
    )
    assert login.status_code == 200, login.text
    user_id = login.json()["user"]["id"]
    cache._store("u:" + user_id, Refused("deactivated"))
    again = await api.post(
        "/v1/auth/login", json={"email": "ada@example.com", "password": "correct horse battery"}
    )
    assert again.status_code == 200
    assert "u:" + user_id not in cache._entries


# ------------------------------------------------- credentials ended here


async def test_a_deleted_account_is_refused_here_at_once(api, backends, auth, read_key):
    """The gateway that deleted the account does not go on trusting its
    cached "yes" for the access token or the API keys for the cache time."""
    assert (await api.get("/v1/usage", headers=auth)).status_code == 200
    assert (await api.get("/v1/stories", headers=read_key)).status_code == 200
    deleted = await api.request(
        "DELETE", "/v1/me", json={"password": "correct horse battery"}, headers=auth
    )
    assert deleted.status_code == 204, deleted.text
    backends.fail("Authenticate", grpc.StatusCode.UNAUTHENTICATED, "unknown account")
    problem(await api.get("/v1/usage", headers=auth), 401, "unauthenticated")
    problem(await api.get("/v1/stories", headers=read_key), 401, "unauthenticated")


async def test_a_deactivated_account_is_refused_here_at_once(api, backends, auth, settings):
    backends.users.superusers = {USER}
    other = {"Authorization": f"Bearer {issue_access_token(settings, OTHER)[0]}"}
    assert (await api.get("/v1/usage", headers=other)).status_code == 200
    deactivated = await api.post(f"/v1/admin/users/{OTHER}/deactivate", json={}, headers=auth)
    assert deactivated.status_code == 200, deactivated.text
    backends.fail("Authenticate", grpc.StatusCode.UNAUTHENTICATED, "account deactivated")
    problem(await api.get("/v1/usage", headers=other), 401, "unauthenticated")


async def test_a_revoked_key_is_refused_here_at_once(api, backends, auth, read_key):
    assert (await api.get("/v1/stories", headers=read_key)).status_code == 200
    revoked = await api.delete(
        "/v1/me/api-keys/0b7f3c1e-8a52-4d0e-9f61-2c4b5a6d7e8f", headers=auth
    )
    assert revoked.status_code == 204
    backends.users.api_keys = {}  # users no longer knows the key
    problem(await api.get("/v1/stories", headers=read_key), 401, "unauthenticated")
    assert (await api.get("/v1/usage", headers=auth)).status_code == 200  # the account still works


async def test_a_keys_child_safe_mark_follows_a_birthdate_change_at_once(
    api, backends, auth, read_key
):
    """The mark comes with users' answer about the credential: a new birthdate
    sent through this gateway is seen by the account's keys on their next
    request, not only by its access token."""
    await api.get("/v1/stories", headers=read_key)
    assert "x-fabula-child-safe" not in backends.only("ListStories").metadata
    backends.users.api_keys = {
        KEY: users_pb2.Principal(user_id=USER, scopes=["read"], api_key_id="k1", child_safe=True)
    }
    changed = await api.patch("/v1/me", json={"birthdate": "2019-05-01"}, headers=auth)
    assert changed.status_code == 200, changed.text
    backends.recorder.calls.clear()
    await api.get("/v1/stories", headers=read_key)
    assert backends.only("ListStories").metadata["x-fabula-child-safe"] == "1"


def test_forgetting_accounts_keeps_no_more_than_the_table_holds():
    """The index that finds an account's key answers follows the bounded
    table: evicted and re-answered keys leave it, so it cannot grow."""
    from fabula_gateway.principals import Principal, PrincipalCache, Refused

    cache = PrincipalCache(ttl_seconds=30, max_entries=10)
    for n in range(100):
        cache._store(f"k:{n}", Principal(user_id=f"user-{n}", api_key_id=str(n)))
    cache._store("k:99", Refused("revoked"))
    assert len(cache) == 10
    assert sorted(cache._keys_of) == [f"user-{n}" for n in range(90, 99)]
    cache.forget_account("user-95")
    assert "k:95" not in cache._entries and "user-95" not in cache._keys_of
