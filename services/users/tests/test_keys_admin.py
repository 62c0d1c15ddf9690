"""API keys, Authenticate, deactivation and administration over real gRPC and Postgres."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import sys
import uuid

import grpc
import pytest
from fabula.users.v1 import users_pb2, users_pb2_grpc
from fabula_common.db import Database, utcnow
from fabula_common.errors import error_reason
from fabula_common.testing import free_port, running_app
from fabula_users.admin.models import AuditEntry
from fabula_users.api_keys.models import ApiKey
from fabula_users.app import create_app
from fabula_users.settings import Settings
from google.protobuf import timestamp_pb2
from sqlalchemy import select, update

PASSWORD = "correct horse battery"
PAST = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


def new_email() -> str:
    return f"keys-{uuid.uuid4().hex[:12]}@example.com"


@pytest.fixture(scope="module")
async def address(test_database, test_stream):
    async with running_app(create_app(Settings(grpc_port=free_port()))) as address:
        yield address


@pytest.fixture(scope="module")
async def users(address):
    async with grpc.aio.insecure_channel(address) as channel:
        yield users_pb2_grpc.UsersServiceStub(channel)


@pytest.fixture(scope="module")
async def db(test_database):
    database = Database(Settings())
    yield database
    await database.dispose()


async def register(users, email: str | None = None) -> users_pb2.TokenResponse:
    return await users.Register(
        users_pb2.RegisterRequest(email=email or new_email(), password=PASSWORD)
    )


async def rpc_error(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def run_command(*args: str) -> tuple[int, str]:
    """The users CLI in a process of its own (as `make superuser` runs it)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fabula_users.admin.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode, output.decode()


@pytest.fixture
async def admin(users) -> users_pb2.User:
    """A superuser, made the documented way (the command)."""
    account = await register(users)
    code, output = await run_command("superuser", account.user.email.upper())
    assert code == 0, output
    assert f"{account.user.email} is now a superuser" in output
    return await users.GetUser(users_pb2.GetUserRequest(user_id=account.user.id))


def timestamp(moment: dt.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


# ------------------------------------------------------------ API keys


async def test_a_key_is_shown_once_stored_hashed_and_authenticates_within_its_scopes(users, db):
    owner = await register(users)
    created = await users.CreateApiKey(
        users_pb2.CreateApiKeyRequest(
            user_id=owner.user.id, name=" ci script ", scopes=["write", "read", "read"]
        )
    )

    key = created.key
    assert key.startswith(created.api_key.prefix + "_") and key.startswith("fab_")
    assert (created.api_key.name, list(created.api_key.scopes)) == ("ci script", ["read", "write"])
    async with db.session_scope() as session:
        row = await session.get(ApiKey, uuid.UUID(created.api_key.id))
        assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
        assert key not in (row.prefix, row.key_hash, row.name)

    principal = await users.Authenticate(users_pb2.AuthenticateRequest(api_key=key))
    assert principal.user_id == owner.user.id
    assert list(principal.scopes) == ["read", "write"]
    assert principal.api_key_id == created.api_key.id
    assert not principal.is_superuser

    listed = await users.ListApiKeys(users_pb2.ListApiKeysRequest(user_id=owner.user.id))
    assert [k.id for k in listed.api_keys] == [created.api_key.id]
    assert listed.api_keys[0].HasField("last_used_at")
    assert key not in str(listed)


async def test_wrong_revoked_and_expired_keys_are_refused(users, db):
    owner = await register(users)
    other = await register(users)
    created = await users.CreateApiKey(
        users_pb2.CreateApiKeyRequest(user_id=owner.user.id, name="k", scopes=["read"])
    )
    tampered = created.key[:-2] + ("AA" if not created.key.endswith("AA") else "BB")

    for bad in (tampered, "fab_nothing", created.api_key.prefix, ""):
        err = await rpc_error(users.Authenticate(users_pb2.AuthenticateRequest(api_key=bad)))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED, bad

    # Someone else's key cannot be revoked by them (and is not told it exists).
    err = await rpc_error(
        users.RevokeApiKey(
            users_pb2.RevokeApiKeyRequest(user_id=other.user.id, api_key_id=created.api_key.id)
        )
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND
    await users.Authenticate(users_pb2.AuthenticateRequest(api_key=created.key))

    await users.RevokeApiKey(
        users_pb2.RevokeApiKeyRequest(user_id=owner.user.id, api_key_id=created.api_key.id)
    )
    err = await rpc_error(users.Authenticate(users_pb2.AuthenticateRequest(api_key=created.key)))
    assert (err.code(), error_reason(err)) == (grpc.StatusCode.UNAUTHENTICATED, "invalid-api-key")

    expiring = await users.CreateApiKey(
        users_pb2.CreateApiKeyRequest(
            user_id=owner.user.id,
            name="soon",
            scopes=["read"],
            expires_at=timestamp(utcnow() + dt.timedelta(hours=1)),
        )
    )
    await users.Authenticate(users_pb2.AuthenticateRequest(api_key=expiring.key))
    async with db.session_scope() as session:
        await session.execute(
            update(ApiKey)
            .where(ApiKey.id == uuid.UUID(expiring.api_key.id))
            .values(expires_at=utcnow() - dt.timedelta(seconds=1))
        )
    err = await rpc_error(users.Authenticate(users_pb2.AuthenticateRequest(api_key=expiring.key)))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"name": "k", "scopes": []}, "scopes"),
        ({"name": "k", "scopes": ["admin"]}, "scopes"),
        ({"name": "  ", "scopes": ["read"]}, "name"),
        ({"name": "k", "scopes": ["read"], "expires_at": timestamp(PAST)}, "expires_at"),
    ],
)
async def test_a_bad_key_request_names_the_field(users, fields, named):
    owner = await register(users)
    err = await rpc_error(
        users.CreateApiKey(users_pb2.CreateApiKeyRequest(user_id=owner.user.id, **fields))
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith(named + ":")


# ------------------------------------------------------------ deactivation and admin


async def test_a_deactivated_account_cannot_sign_in_refresh_or_authenticate(users, admin, db):
    account = await register(users)
    key = await users.CreateApiKey(
        users_pb2.CreateApiKeyRequest(user_id=account.user.id, name="k", scopes=["write"])
    )
    await users.Authenticate(users_pb2.AuthenticateRequest(user_id=account.user.id))

    user = await users.AdminSetActive(
        users_pb2.AdminSetActiveRequest(
            actor_id=admin.id, user_id=account.user.id, active=False, reason="spam"
        )
    )
    assert not user.is_active

    login = users.Login(users_pb2.LoginRequest(email=account.user.email, password=PASSWORD))
    err = await rpc_error(login)
    assert error_reason(err) == "account-deactivated"
    err = await rpc_error(
        users.Refresh(users_pb2.RefreshRequest(refresh_token=account.refresh_token))
    )
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    for request in (
        users_pb2.AuthenticateRequest(user_id=account.user.id),
        users_pb2.AuthenticateRequest(api_key=key.key),
    ):
        err = await rpc_error(users.Authenticate(request))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    # A wrong password is not told that the account is deactivated.
    err = await rpc_error(
        users.Login(users_pb2.LoginRequest(email=account.user.email, password="wrong password"))
    )
    assert error_reason(err) == "invalid-credentials"

    await users.AdminSetActive(
        users_pb2.AdminSetActiveRequest(actor_id=admin.id, user_id=account.user.id, active=True)
    )
    await users.Login(users_pb2.LoginRequest(email=account.user.email, password=PASSWORD))
    await users.Authenticate(users_pb2.AuthenticateRequest(api_key=key.key))

    audit = await users.AdminListAudit(
        users_pb2.AdminListAuditRequest(actor_id=admin.id, target_user_id=account.user.id)
    )
    assert [(e.action, e.actor_id, dict(e.details)) for e in audit.entries] == [
        ("user.reactivated", admin.id, {}),
        ("user.deactivated", admin.id, {"reason": "spam"}),
    ]


async def test_an_unknown_user_id_does_not_authenticate(users):
    unknown = users_pb2.AuthenticateRequest(user_id=str(uuid.uuid4()))
    err = await rpc_error(users.Authenticate(unknown))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_only_superusers_administer(users, admin):
    plain = await register(users)
    calls = [
        users.AdminListUsers(users_pb2.AdminListUsersRequest(actor_id=plain.user.id)),
        users.AdminSetActive(
            users_pb2.AdminSetActiveRequest(actor_id=plain.user.id, user_id=admin.id)
        ),
        users.AdminSetSuperuser(
            users_pb2.AdminSetSuperuserRequest(
                actor_id=plain.user.id, user_id=plain.user.id, superuser=True
            )
        ),
        users.AdminRecordAction(
            users_pb2.AdminRecordActionRequest(actor_id=plain.user.id, action="plan.set")
        ),
        users.AdminListAudit(users_pb2.AdminListAuditRequest(actor_id=plain.user.id)),
    ]
    for call in calls:
        err = await rpc_error(call)
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED

    principal = await users.Authenticate(users_pb2.AuthenticateRequest(user_id=admin.id))
    assert principal.is_superuser


async def test_the_command_grant_is_audited_as_the_commands(users, admin):
    audit = await users.AdminListAudit(
        users_pb2.AdminListAuditRequest(actor_id=admin.id, target_user_id=admin.id)
    )
    (entry,) = audit.entries
    assert (entry.action, entry.actor_id, dict(entry.details)) == (
        "superuser.granted",
        "",
        {"via": "command"},
    )
    code, output = await run_command("superuser", "nobody-" + new_email())
    assert code == 1 and "no account" in output, output


async def test_granting_superuser_and_recording_actions_write_audit_rows(users, admin, db):
    other = await register(users)
    granted = await users.AdminSetSuperuser(
        users_pb2.AdminSetSuperuserRequest(
            actor_id=admin.id, user_id=other.user.id, superuser=True, reason="on call"
        )
    )
    assert granted.is_superuser
    recorded = await users.AdminRecordAction(
        users_pb2.AdminRecordActionRequest(
            actor_id=other.user.id,
            action="plan.set",
            target_user_id=admin.id,
            details={"plan": "pro", "reason": "comp"},
        )
    )
    assert (recorded.actor_id, recorded.target_user_id) == (other.user.id, admin.id)

    # An admin cannot lock themself out, and a refused change writes no audit row.
    err = await rpc_error(
        users.AdminSetActive(
            users_pb2.AdminSetActiveRequest(actor_id=admin.id, user_id=admin.id, active=False)
        )
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    err = await rpc_error(
        users.AdminSetActive(
            users_pb2.AdminSetActiveRequest(actor_id=admin.id, user_id=str(uuid.uuid4()))
        )
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND

    async with db.session_scope() as session:
        rows = await session.scalars(
            select(AuditEntry)
            .where(AuditEntry.actor_id.in_([uuid.UUID(admin.id), uuid.UUID(other.user.id)]))
            .order_by(AuditEntry.created_at)
        )
        assert [(r.action, r.details) for r in rows] == [
            ("superuser.granted", {"reason": "on call"}),
            ("plan.set", {"plan": "pro", "reason": "comp"}),
        ]


async def test_listing_users_searches_and_pages(users, admin):
    tag = uuid.uuid4().hex[:8]
    emails = [f"find-{tag}-{n}@example.com" for n in range(5)]
    for email in emails:
        await register(users, email)
    await register(users, f"other-{uuid.uuid4().hex[:8]}@example.com")

    found, cursor = [], ""
    while True:
        page = await users.AdminListUsers(
            users_pb2.AdminListUsersRequest(
                actor_id=admin.id, query=tag.upper(), limit=2, cursor=cursor
            )
        )
        assert len(page.users) <= 2
        found += [user.email for user in page.users]
        cursor = page.next_cursor
        if not cursor:
            break
    assert found == list(reversed(emails))  # newest first

    # LIKE's wildcards are searched for literally.
    page = await users.AdminListUsers(
        users_pb2.AdminListUsersRequest(actor_id=admin.id, query="%")
    )
    assert page.users == []
    err = await rpc_error(
        users.AdminListUsers(users_pb2.AdminListUsersRequest(actor_id=admin.id, cursor="nonsense"))
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
