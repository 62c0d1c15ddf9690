"""Sign-in with identity providers, over real gRPC and Postgres, against a
local OpenID Connect provider (tests/fakes/fake_oidc.py) started here."""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import grpc
import httpx
import pytest
from fabula.users.v1 import users_pb2, users_pb2_grpc
from fabula_common.db import Database
from fabula_common.errors import error_reason
from fabula_common.testing import free_port, running_app
from fabula_users.app import create_app
from fabula_users.identities.models import Identity, PendingSignIn
from fabula_users.settings import Settings
from sqlalchemy import func, select, update

FAKE_OIDC_PATH = Path(__file__).resolve().parents[3] / "tests" / "fakes" / "fake_oidc.py"
REDIRECT_URI = "https://app.example/signed-in"
PASSWORD = "correct horse battery"


def _load_fake_oidc():
    spec = importlib.util.spec_from_file_location("fake_oidc", FAKE_OIDC_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["fake_oidc"] = module
    spec.loader.exec_module(module)
    return module


fake_oidc = _load_fake_oidc()


@pytest.fixture(scope="module")
def provider():
    with fake_oidc.FakeOidc() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _fresh_user(provider):
    """Each test signs in as someone new, with an honest ID token."""
    provider.user = person()
    provider.tamper = None


def person(email: str | None = None, *, verified: bool = True) -> dict:
    return {
        "sub": f"sub-{uuid.uuid4().hex}",
        "email": email or f"reader-{uuid.uuid4().hex[:12]}@example.com",
        "email_verified": verified,
        "name": "Ada Lovelace",
    }


@pytest.fixture(scope="module")
async def users(test_database, test_stream, provider):
    settings = Settings(
        grpc_port=free_port(),
        oidc_providers={"fake": provider.provider_config(), "github": provider.github_config()},
        oidc_timeout_seconds=3.0,
    )
    async with (
        running_app(create_app(settings)) as address,
        grpc.aio.insecure_channel(address) as channel,
    ):
        yield users_pb2_grpc.UsersServiceStub(channel)


@pytest.fixture(scope="module")
async def db(test_database):
    database = Database(Settings())
    yield database
    await database.dispose()


async def authorize(users, provider_name: str = "fake") -> tuple[str, str]:
    """Start a sign-in and let the provider approve it: (state, code)."""
    started = await users.StartIdentitySignIn(
        users_pb2.StartIdentitySignInRequest(provider=provider_name, redirect_uri=REDIRECT_URI)
    )
    async with httpx.AsyncClient(timeout=5) as http:
        approved = await http.get(started.authorization_url)
    assert approved.status_code == 302, approved.text
    location = urlsplit(approved.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
    query = parse_qs(location.query)
    assert query["state"] == [started.state]
    return query["state"][0], query["code"][0]


async def complete(users, state: str, code: str, provider_name: str = "fake"):
    return await users.CompleteIdentitySignIn(
        users_pb2.CompleteIdentitySignInRequest(
            provider=provider_name, state=state, code=code, redirect_uri=REDIRECT_URI
        )
    )


async def sign_in(users, provider_name: str = "fake") -> users_pb2.TokenResponse:
    state, code = await authorize(users, provider_name)
    return await complete(users, state, code, provider_name)


async def rpc_error(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def identities_of(users, user_id: str) -> list[users_pb2.Identity]:
    reply = await users.ListIdentities(users_pb2.ListIdentitiesRequest(user_id=user_id))
    return list(reply.identities)


async def test_providers_are_listed_by_name_with_their_display_names(users):
    reply = await users.ListIdentityProviders(users_pb2.ListIdentityProvidersRequest())

    assert [(p.name, p.display_name) for p in reply.providers] == [
        ("fake", "Fake OIDC"),
        ("github", "Fake GitHub"),
    ]


async def test_a_provider_not_configured_is_not_found(users):
    err = await rpc_error(
        users.StartIdentitySignIn(
            users_pb2.StartIdentitySignInRequest(provider="nope", redirect_uri=REDIRECT_URI)
        )
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND


async def test_the_authorization_url_asks_for_a_code_with_pkce_state_and_nonce(users, provider):
    await authorize(users)

    sent = provider.authorize_requests[-1]
    assert sent["response_type"] == "code"
    assert sent["client_id"] == provider.client_id
    assert sent["code_challenge_method"] == "S256" and len(sent["code_challenge"]) == 43
    assert sent["nonce"] and sent["state"] and sent["scope"] == "openid email profile"


async def test_a_first_sign_in_creates_a_verified_account_without_a_password(users, provider):
    email = provider.user["email"]

    signed_in = await sign_in(users)

    assert signed_in.access_token and signed_in.refresh_token
    assert signed_in.user.email == email
    assert signed_in.user.is_verified and not signed_in.user.has_password
    # The token request proved the PKCE verifier with the client secret.
    assert len(provider.token_requests[-1]["code_verifier"]) >= 43
    (identity,) = await identities_of(users, signed_in.user.id)
    assert (identity.provider, identity.subject, identity.email) == (
        "fake",
        provider.user["sub"],
        email,
    )
    # Signing in again is the same account, still one identity.
    again = await sign_in(users)
    assert again.user.id == signed_in.user.id
    assert len(await identities_of(users, signed_in.user.id)) == 1
    # No password: a password login fails like any wrong one.
    err = await rpc_error(users.Login(users_pb2.LoginRequest(email=email, password=PASSWORD)))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_verified_provider_email_links_to_the_existing_account(users, provider):
    registered = await users.Register(
        users_pb2.RegisterRequest(email=provider.user["email"], password=PASSWORD)
    )

    signed_in = await sign_in(users)

    assert signed_in.user.id == registered.user.id
    assert signed_in.user.has_password and signed_in.user.is_verified
    assert [i.subject for i in await identities_of(users, registered.user.id)] == [
        provider.user["sub"]
    ]


async def test_an_unverified_provider_email_never_links_to_an_existing_account(users, provider):
    provider.user = person(verified=False)
    registered = await users.Register(
        users_pb2.RegisterRequest(email=provider.user["email"], password=PASSWORD)
    )

    err = await rpc_error(sign_in(users))

    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    assert await identities_of(users, registered.user.id) == []


async def test_an_unverified_provider_email_of_no_account_makes_an_unverified_one(users, provider):
    provider.user = person(verified=False)

    signed_in = await sign_in(users)

    assert signed_in.user.email == provider.user["email"]
    assert not signed_in.user.is_verified


async def test_an_unknown_state_is_refused(users):
    _, code = await authorize(users)

    err = await rpc_error(complete(users, "not-a-state-we-issued", code))

    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(err) == "invalid-state"


async def test_a_state_is_single_use(users):
    state, code = await authorize(users)
    await complete(users, state, code)

    err = await rpc_error(complete(users, state, code))

    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(err) == "invalid-state"


async def test_a_state_fails_after_a_failed_completion_too(users, provider):
    state, code = await authorize(users)
    await rpc_error(complete(users, state, "a-code-the-provider-never-issued"))

    err = await rpc_error(complete(users, state, code))

    assert error_reason(err) == "invalid-state"


async def test_an_expired_state_is_refused(users, db):
    state, code = await authorize(users)
    async with db.session_scope() as session:
        await session.execute(
            update(PendingSignIn).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(1))
        )

    err = await rpc_error(complete(users, state, code))

    assert error_reason(err) == "invalid-state"


async def test_a_state_of_another_provider_is_refused(users):
    state, code = await authorize(users, "fake")

    err = await rpc_error(complete(users, state, code, "github"))

    assert error_reason(err) == "invalid-state"


async def test_a_code_the_provider_refuses_is_unauthenticated(users):
    state, _ = await authorize(users)

    err = await rpc_error(complete(users, state, "forged-code"))

    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(err) == "identity-provider-refused"


@pytest.mark.parametrize(
    "tamper", ["wrong-key", "wrong-nonce", "wrong-audience", "wrong-issuer", "expired"]
)
async def test_an_id_token_that_does_not_verify_signs_no_one_in(users, provider, db, tamper):
    provider.tamper = tamper

    err = await rpc_error(sign_in(users))

    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(err) == "invalid-id-token"
    async with db.session_scope() as session:
        linked = await session.scalar(
            select(func.count()).where(Identity.subject == provider.user["sub"])
        )
    assert linked == 0


async def test_a_plain_oauth2_provider_signs_in_by_its_userinfo_and_verified_emails(
    users, provider
):
    signed_in = await sign_in(users, "github")

    assert signed_in.user.email == provider.user["email"] and signed_in.user.is_verified
    (identity,) = await identities_of(users, signed_in.user.id)
    assert identity.provider == "github" and identity.subject.isdigit()


async def test_the_only_way_to_sign_in_cannot_be_unlinked(users):
    signed_in = await sign_in(users)
    (only,) = await identities_of(users, signed_in.user.id)

    err = await rpc_error(
        users.UnlinkIdentity(
            users_pb2.UnlinkIdentityRequest(user_id=signed_in.user.id, identity_id=only.id)
        )
    )

    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(err) == "last-sign-in-method"
    assert len(await identities_of(users, signed_in.user.id)) == 1


async def test_with_another_identity_one_can_be_unlinked_but_not_the_last(users):
    first = await sign_in(users, "fake")
    second = await sign_in(users, "github")  # same verified email: linked to the same account
    assert second.user.id == first.user.id
    fake_identity, github_identity = await identities_of(users, first.user.id)

    await users.UnlinkIdentity(
        users_pb2.UnlinkIdentityRequest(user_id=first.user.id, identity_id=fake_identity.id)
    )

    assert [i.id for i in await identities_of(users, first.user.id)] == [github_identity.id]
    err = await rpc_error(
        users.UnlinkIdentity(
            users_pb2.UnlinkIdentityRequest(user_id=first.user.id, identity_id=github_identity.id)
        )
    )
    assert error_reason(err) == "last-sign-in-method"


async def test_an_account_with_a_password_can_unlink_its_only_identity(users, provider):
    registered = await users.Register(
        users_pb2.RegisterRequest(email=provider.user["email"], password=PASSWORD)
    )
    await sign_in(users)
    (identity,) = await identities_of(users, registered.user.id)

    await users.UnlinkIdentity(
        users_pb2.UnlinkIdentityRequest(user_id=registered.user.id, identity_id=identity.id)
    )

    assert await identities_of(users, registered.user.id) == []


async def test_someone_elses_identity_is_not_found(users, provider):
    owner = await sign_in(users)
    (identity,) = await identities_of(users, owner.user.id)
    provider.user = person()
    other = await users.Register(
        users_pb2.RegisterRequest(email=provider.user["email"], password=PASSWORD)
    )

    err = await rpc_error(
        users.UnlinkIdentity(
            users_pb2.UnlinkIdentityRequest(user_id=other.user.id, identity_id=identity.id)
        )
    )

    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert len(await identities_of(users, owner.user.id)) == 1
