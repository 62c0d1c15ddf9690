"""Sign-in with an identity provider through the gateway, against a local
OpenID Connect provider (tests/fakes/fake_oidc.py), on the real stack."""

from __future__ import annotations

import importlib.util
import json
import sys
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

FAKE_OIDC_PATH = Path(__file__).resolve().parents[1] / "fakes" / "fake_oidc.py"


def _load_fake_oidc():
    spec = importlib.util.spec_from_file_location("fake_oidc", FAKE_OIDC_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["fake_oidc"] = module
    spec.loader.exec_module(module)
    return module


def test_a_new_user_signs_in_with_the_provider_and_cannot_unlink_the_only_way_in(
    start_private_stack, problem
):
    fake_oidc = _load_fake_oidc()
    email = f"oidc-{uuid.uuid4().hex[:10]}@example.com"
    with fake_oidc.FakeOidc() as provider:
        provider.user.update(email=email, sub=f"sub-{uuid.uuid4().hex}")
        api = start_private_stack(
            USERS_OIDC_PROVIDERS_JSON=json.dumps({"fake": provider.provider_config()})
        )
        http = api.http
        listed = http.get("/v1/auth/providers")
        assert listed.json() == {"providers": [{"name": "fake", "display_name": "Fake OIDC"}]}

        # The browser: gateway -> provider (auto-approves) -> gateway's callback.
        started = http.get("/v1/auth/oidc/fake/start")
        assert started.status_code == 302, started.text
        assert started.headers["location"].startswith(f"{provider.issuer}/authorize?")
        approved = http.get(started.headers["location"])
        assert approved.status_code == 302, approved.text
        callback = approved.headers["location"]
        assert callback.startswith(f"{api.stack.base_url}/v1/auth/oidc/fake/callback?")
        signed_in = http.get(callback)
        assert signed_in.status_code == 200, signed_in.text
        tokens = signed_in.json()
        assert tokens["user"]["email"] == email
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}

        assert http.get("/v1/me", headers=headers).json()["email"] == email
        # Billing opened the new account's usage (UserRegistered was published).
        api.wait_for(lambda: http.get("/v1/usage", headers=headers).status_code == 200)
        # The state was used: the same callback again is refused.
        problem(http.get(callback), 422)

        (identity,) = http.get("/v1/me/identities", headers=headers).json()["identities"]
        assert (identity["provider"], identity["email"]) == ("fake", email)
        refused = http.delete(f"/v1/me/identities/{identity['id']}", headers=headers)
        problem(refused, 409)
        # No password: logging in with one fails cleanly.
        login = http.post("/v1/auth/login", json={"email": email, "password": "whatever-123"})
        problem(login, 401)
