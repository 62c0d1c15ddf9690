"""API keys and administration end to end: a read-only key lists stories but
cannot create one; an admin made with `make superuser`'s command deactivates
a user, whose next calls fail within the gateway's cache time."""

from __future__ import annotations

import subprocess
import sys

from fabula_common.provision import service_database_url

CACHE_SECONDS = 30  # GATEWAY_AUTH_CACHE_TTL_SECONDS' default


def make_superuser(stack, email: str) -> None:
    """What `make superuser EMAIL=...` runs, with the stack's database."""
    env = dict(stack.env)
    env["USERS_DATABASE_URL"] = service_database_url(
        env["POSTGRES_ADMIN_URL"],
        env["FABULA_DATABASE_NAME"],
        "users",
        env.get("USERS_DB_PASSWORD"),
    )
    done = subprocess.run(
        [sys.executable, "-m", "fabula_users.admin.cli", "superuser", email],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_read_only_key_reads_but_does_not_write(api, problem):
    writer = api.register()
    assert api.create_story(writer).status_code == 201
    created = api.http.post(
        "/v1/me/api-keys", json={"name": "export", "scopes": ["read"]}, headers=writer.headers
    )
    assert created.status_code == 201, created.text
    key = {"Authorization": f"Bearer {created.json()['key']}"}

    listed = api.http.get("/v1/stories", headers=key)
    assert listed.status_code == 200, listed.text
    assert len(listed.json()["items"]) == 1
    problem(
        api.http.post("/v1/stories", json={"genre": "fantasy"}, headers=key),
        403,
        "insufficient-scope",
    )
    keys = api.http.get("/v1/me/api-keys", headers=writer.headers).json()["items"]
    assert [k["prefix"] for k in keys] == [created.json()["prefix"]]
    assert "key" not in keys[0]


def test_an_admin_deactivates_a_user_whose_calls_then_fail(api, stack, problem):
    admin, user = api.register(), api.register()
    make_superuser(stack, admin.email)
    key = api.http.post(
        "/v1/me/api-keys", json={"name": "bot", "scopes": ["read", "write"]}, headers=user.headers
    ).json()["key"]
    assert api.http.get("/v1/stories", headers=user.headers).status_code == 200

    found = api.http.get("/v1/admin/users", params={"q": user.email}, headers=admin.headers)
    assert found.status_code == 200, found.text
    (listed,) = found.json()["items"]
    # Not an admin: refused.
    problem(api.http.get("/v1/admin/users", headers=user.headers), 403, "forbidden")

    deactivated = api.http.post(
        f"/v1/admin/users/{listed['id']}/deactivate",
        json={"reason": "e2e"},
        headers=admin.headers,
    )
    assert deactivated.status_code == 200, deactivated.text
    assert deactivated.json()["is_active"] is False

    # Signing in again is refused at once; the token and key within the cache time.
    login = api.http.post("/v1/auth/login", json={"email": user.email, "password": user.password})
    problem(login, 401)
    api.wait_for(
        lambda: api.http.get("/v1/stories", headers=user.headers).status_code == 401,
        timeout=CACHE_SECONDS + 5,
        interval=0.5,
    )
    problem(api.http.get("/v1/stories", headers={"Authorization": f"Bearer {key}"}), 401)

    audit = api.http.get(
        "/v1/admin/audit", params={"user_id": listed["id"]}, headers=admin.headers
    ).json()["items"]
    assert [(e["action"], e["actor_id"], e["details"]) for e in audit] == [
        ("user.deactivated", admin.tokens["user"]["id"], {"reason": "e2e"})
    ]
