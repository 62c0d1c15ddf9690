"""The users service over real gRPC, Postgres and NATS."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import argon2
import grpc
import nats
import pytest
from fabula.users.v1 import events_pb2, users_pb2, users_pb2_grpc
from fabula_common.db import Database, utcnow
from fabula_common.errors import Unauthenticated, error_reason
from fabula_common.messaging.bus import subject_for
from fabula_common.messaging.headers import MSG_ID_HEADER
from fabula_common.testing import RolledBackDatabase, free_port, rolled_back_session, running_app
from fabula_common.tokens import verify_access_token
from fabula_users.accounts.models import RefreshToken, RegistrationKey, User
from fabula_users.accounts.passwords import PasswordHashing
from fabula_users.accounts.sealing import open_replacement
from fabula_users.accounts.service import UsersService, hash_refresh_token
from fabula_users.accounts.servicer import UsersServicer
from fabula_users.accounts.tasks import ExpiredRecordsPurger
from fabula_users.app import create_app
from fabula_users.database import outbox
from fabula_users.settings import Settings
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

PASSWORD = "correct horse battery"


def new_email() -> str:
    return f"reader-{uuid.uuid4().hex[:12]}@example.com"


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


@pytest.fixture
async def session(db) -> AsyncIterator[AsyncSession]:
    """For calling the service's code in-process: every change is undone after the test."""
    async with rolled_back_session(db) as session:
        yield session


async def register(users, email: str | None = None, **fields) -> users_pb2.TokenResponse:
    request = users_pb2.RegisterRequest(email=email or new_email(), password=PASSWORD, **fields)
    return await users.Register(request)


async def rpc_error(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def reason(err: grpc.aio.AioRpcError) -> str | None:
    return error_reason(err)


async def test_register_login_refresh_and_get_user(users):
    email = new_email()
    registered = await register(users, email, full_name="  Ada Lovelace ")

    user = registered.user
    assert uuid.UUID(user.id)
    assert (user.email, user.full_name) == (email, "Ada Lovelace")
    assert abs(user.created_at.ToDatetime(dt.UTC) - utcnow()) < dt.timedelta(minutes=1)
    settings = Settings()
    assert registered.expires_in == settings.access_token_ttl_seconds
    assert verify_access_token(settings, registered.access_token).user_id == user.id
    assert registered.refresh_token

    logged_in = await users.Login(users_pb2.LoginRequest(email=email, password=PASSWORD))
    # The login is recorded: it is the only difference.
    assert not user.HasField("last_login_at")
    assert logged_in.user.HasField("last_login_at")
    user = logged_in.user
    assert verify_access_token(settings, logged_in.access_token).user_id == user.id
    assert logged_in.refresh_token != registered.refresh_token

    refreshed = await users.Refresh(users_pb2.RefreshRequest(refresh_token=logged_in.refresh_token))
    assert refreshed.user == user
    assert verify_access_token(settings, refreshed.access_token).user_id == user.id
    assert refreshed.refresh_token not in (logged_in.refresh_token, registered.refresh_token)

    assert await users.GetUser(users_pb2.GetUserRequest(user_id=user.id)) == user


async def test_email_is_trimmed_lower_cased_and_unique_regardless_of_case(users, db):
    local = f"Mixed.Case-{uuid.uuid4().hex[:8]}"
    registered = await register(users, f"  {local}@Example.COM ")
    assert registered.user.email == f"{local.lower()}@example.com"

    err = await rpc_error(register(users, f"{local.upper()}@EXAMPLE.com"))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    assert err.details().startswith("email:")

    login = users.Login(
        users_pb2.LoginRequest(email=f" {local.upper()}@example.com", password=PASSWORD)
    )
    assert (await login).user.id == registered.user.id
    async with db.session_scope() as session:
        stored = await session.scalar(
            select(User.email).where(User.id == uuid.UUID(registered.user.id))
        )
    assert stored == registered.user.email


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "two@@example.com"}, "email"),
        ({"email": ""}, "email"),
        ({"password": "short12"}, "password"),
        ({"password": "p" * 129}, "password"),
        ({"full_name": "n" * 201}, "full_name"),
        # Postgres text cannot hold NUL: refused, not an internal error.
        ({"full_name": "Ada\x00Lovelace"}, "full_name"),
    ],
)
async def test_register_rejects_invalid_input_naming_the_field(users, fields, field):
    request = {"email": new_email(), "password": PASSWORD, "full_name": "", **fields}
    err = await rpc_error(users.Register(users_pb2.RegisterRequest(**request)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith(f"{field}:")


async def test_password_length_limits_are_inclusive(users):
    for password in ("p" * 8, "p" * 128):
        request = users_pb2.RegisterRequest(email=new_email(), password=password)
        assert (await users.Register(request)).user.id


async def test_password_is_stored_as_argon2id_hash(users, db):
    registered = await register(users)
    async with db.session_scope() as session:
        stored = await session.scalar(
            select(User.password_hash).where(User.id == uuid.UUID(registered.user.id))
        )
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


async def test_wrong_password_and_unknown_email_get_the_same_answer(users):
    email = new_email()
    await register(users, email)

    wrong_password = await rpc_error(
        users.Login(users_pb2.LoginRequest(email=email, password="wrong password"))
    )
    unknown_email = await rpc_error(
        users.Login(users_pb2.LoginRequest(email=new_email(), password=PASSWORD))
    )
    malformed_email = await rpc_error(
        users.Login(users_pb2.LoginRequest(email="nobody", password=PASSWORD))
    )

    for err in (wrong_password, unknown_email, malformed_email):
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        assert err.details() == "invalid email or password"
        assert reason(err) == reason(wrong_password)


async def end_grace_window(db, refresh_token: str) -> None:
    """As if the grace window after `refresh_token`'s rotation had passed."""
    async with db.session_scope() as session:
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.token_hash == hash_refresh_token(refresh_token))
            .values(replacement_expires_at=utcnow() - dt.timedelta(seconds=1))
        )


async def refresh(users, token: str) -> users_pb2.TokenResponse:
    return await users.Refresh(users_pb2.RefreshRequest(refresh_token=token))


async def test_refresh_rotates_and_a_reuse_after_the_grace_window_revokes_its_family(users, db):
    email = new_email()
    first = await register(users, email)
    other_session = await users.Login(users_pb2.LoginRequest(email=email, password=PASSWORD))

    second = await refresh(users, first.refresh_token)
    await end_grace_window(db, first.refresh_token)

    # The rotated-away token is refused, and replaying it also kills the
    # token that replaced it: one of the two holders is a thief.
    for token in (first.refresh_token, second.refresh_token):
        err = await rpc_error(refresh(users, token))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED

    # Another login's family is untouched.
    assert await refresh(users, other_session.refresh_token)


async def test_concurrent_refreshes_of_one_token_get_the_same_new_refresh_token(users, db):
    """Two tabs refreshing at once (or a retry after a lost answer) stay logged in."""
    registered = await register(users)

    results = await asyncio.gather(
        refresh(users, registered.refresh_token), refresh(users, registered.refresh_token)
    )

    assert results[0].refresh_token == results[1].refresh_token != registered.refresh_token
    assert results[0].user == results[1].user == registered.user
    settings = Settings()
    for result in results:
        assert verify_access_token(settings, result.access_token).user_id == registered.user.id
    # The family is intact: the new token works, and only the old one was retired.
    async with db.session_scope() as session:
        family = (
            await session.scalars(
                select(RefreshToken).where(RefreshToken.user_id == uuid.UUID(registered.user.id))
            )
        ).all()
    live = [token for token in family if token.revoked_at is None]
    assert [token.token_hash for token in live] == [hash_refresh_token(results[0].refresh_token)]
    assert len(family) == 2
    assert await refresh(users, results[0].refresh_token)


async def test_a_third_use_within_the_window_gets_the_same_refresh_token(users):
    registered = await register(users)

    answers = [await refresh(users, registered.refresh_token) for _ in range(3)]

    assert len({answer.refresh_token for answer in answers}) == 1
    assert (await refresh(users, answers[0].refresh_token)).refresh_token


async def test_a_replay_within_the_window_follows_a_rotation_made_meanwhile(users):
    """Tab A refreshed twice before tab B's copy of the first token arrived."""
    registered = await register(users)
    second = await refresh(users, registered.refresh_token)
    third = await refresh(users, second.refresh_token)

    late = await refresh(users, registered.refresh_token)

    assert late.refresh_token == third.refresh_token
    assert await refresh(users, third.refresh_token)


async def test_the_replacement_is_stored_sealed_and_forgotten_after_the_window(users, db, session):
    registered = await register(users)
    second = await refresh(users, registered.refresh_token)
    async with db.session_scope() as reading:
        rotated = await reading.scalar(
            select(RefreshToken).where(
                RefreshToken.token_hash == hash_refresh_token(registered.refresh_token)
            )
        )
    assert rotated.replacement_sealed
    assert second.refresh_token.encode() not in rotated.replacement_sealed
    # Only the old token opens it.
    assert open_replacement("another-token", rotated.id, rotated.replacement_sealed) is None
    assert (
        open_replacement(registered.refresh_token, rotated.id, rotated.replacement_sealed)
        == second.refresh_token
    )

    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == rotated.id)
        .values(replacement_expires_at=utcnow() - dt.timedelta(seconds=1))
    )
    async with in_process(Settings(), session) as servicer:
        await ExpiredRecordsPurger(RolledBackDatabase(session), servicer.service, 3600).purge_once()
    cleared = await session.scalar(
        select(RefreshToken.replacement_sealed).where(RefreshToken.id == rotated.id)
    )
    assert cleared is None


async def test_without_a_grace_window_a_second_use_revokes_the_family(session):
    settings = Settings(refresh_reuse_grace_seconds=0)
    async with in_process(settings, session) as servicer:
        registered = await servicer.Register(
            users_pb2.RegisterRequest(email=new_email(), password=PASSWORD), None
        )
        request = users_pb2.RefreshRequest(refresh_token=registered.refresh_token)
        second = await servicer.Refresh(request, None)
        with pytest.raises(Unauthenticated):
            await servicer.Refresh(request, None)
        with pytest.raises(Unauthenticated):
            await servicer.Refresh(
                users_pb2.RefreshRequest(refresh_token=second.refresh_token), None
            )


@pytest.mark.parametrize("token", ["", "no-such-token", "x" * 2000])
async def test_unknown_refresh_token_is_unauthenticated(users, token):
    err = await rpc_error(users.Refresh(users_pb2.RefreshRequest(refresh_token=token)))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


@asynccontextmanager
async def in_process(settings: Settings, session: AsyncSession) -> AsyncIterator[UsersServicer]:
    """The service's servicer called directly, on a rolled-back session."""
    passwords = PasswordHashing(settings)
    try:
        yield UsersServicer(RolledBackDatabase(session), UsersService(settings, passwords))
    finally:
        await passwords.close()


async def test_expired_refresh_token_is_refused_and_later_purged(session):
    settings = Settings(refresh_token_retention_seconds=7 * 24 * 3600)
    async with in_process(settings, session) as servicer:
        registered = await servicer.Register(
            users_pb2.RegisterRequest(email=new_email(), password=PASSWORD), None
        )
        token_hash = hash_refresh_token(registered.refresh_token)
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.token_hash == token_hash)
            .values(expires_at=utcnow() - dt.timedelta(days=30))
        )

        with pytest.raises(Unauthenticated):
            await servicer.Refresh(
                users_pb2.RefreshRequest(refresh_token=registered.refresh_token), None
            )
        await ExpiredRecordsPurger(RolledBackDatabase(session), servicer.service, 3600).purge_once()

    remaining = await session.scalar(
        select(RefreshToken.id).where(RefreshToken.token_hash == token_hash)
    )
    assert remaining is None


async def test_login_rehashes_a_password_hashed_with_old_parameters(users, session):
    email = new_email()
    registered = await register(users, email)
    stronger = Settings(argon2_time_cost=Settings().argon2_time_cost + 1)

    async with in_process(stronger, session) as servicer:
        await servicer.Login(users_pb2.LoginRequest(email=email, password=PASSWORD), None)

    stored = await session.scalar(
        select(User.password_hash).where(User.id == uuid.UUID(registered.user.id))
    )
    assert f"t={stronger.argon2_time_cost}," in stored
    # argon2 reads the parameters from the hash: any service verifies it.
    assert argon2.PasswordHasher().verify(stored, PASSWORD)


async def test_get_user_not_found(users):
    for user_id in (str(uuid.uuid4()), "not-a-uuid", ""):
        err = await rpc_error(users.GetUser(users_pb2.GetUserRequest(user_id=user_id)))
        assert err.code() == grpc.StatusCode.NOT_FOUND


async def test_find_user_by_email_ignores_case_and_surrounding_spaces(users):
    email = new_email()
    user = (await register(users, email)).user

    found = await users.FindUserByEmail(
        users_pb2.FindUserByEmailRequest(email=f"  {email.upper()} ")
    )

    assert found == user


async def test_find_user_by_email_is_not_found_for_an_unknown_email(users):
    request = users_pb2.FindUserByEmailRequest(email=new_email())
    err = await rpc_error(users.FindUserByEmail(request))
    assert err.code() == grpc.StatusCode.NOT_FOUND


async def test_find_user_by_email_refuses_a_malformed_email(users):
    request = users_pb2.FindUserByEmailRequest(email="no-at-sign")
    err = await rpc_error(users.FindUserByEmail(request))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "email" in err.details()


async def test_registration_publishes_user_registered(users, nats_url):
    subject = subject_for(Settings(), "users", "user_registered")
    nc = await nats.connect(nats_url, connect_timeout=2)
    try:
        subscription = await nc.subscribe(subject)
        registered = await register(users)
        while True:
            message = await subscription.next_msg(timeout=10)
            event = events_pb2.UserRegistered.FromString(message.data)
            if event.user_id == registered.user.id:
                break
    finally:
        await nc.close()

    assert event.email == registered.user.email
    assert uuid.UUID(event.event_id)
    assert message.headers[MSG_ID_HEADER] == event.event_id
    assert event.occurred_at == registered.user.created_at


# --- Idempotent registration ------------------------------------------------------


def registration(email: str, key: str, **fields) -> users_pb2.RegisterRequest:
    return users_pb2.RegisterRequest(email=email, password=PASSWORD, idempotency_key=key, **fields)


async def user_registered_events(db, user_id: str) -> int:
    async with db.session_scope() as session:
        payloads = await session.scalars(
            select(outbox.c.payload).where(
                outbox.c.subject == subject_for(Settings(), "users", "user_registered")
            )
        )
        return sum(
            events_pb2.UserRegistered.FromString(payload).user_id == user_id for payload in payloads
        )


async def test_a_retried_registration_with_its_key_answers_for_the_same_account(users, db):
    email, key = new_email(), str(uuid.uuid4())
    first = await users.Register(registration(email, key, full_name="Ada"))

    retried = await users.Register(registration(email, key, full_name="Ada"))

    assert retried.user == first.user
    assert retried.refresh_token != first.refresh_token  # a new pair, both valid
    assert verify_access_token(Settings(), retried.access_token).user_id == first.user.id
    for answer in (first, retried):
        assert await refresh(users, answer.refresh_token)
    assert await user_registered_events(db, first.user.id) == 1
    # Without the key, the same request is what it always was: the email is taken.
    err = await rpc_error(users.Register(registration(email, "", full_name="Ada")))
    assert (err.code(), reason(err)) == (grpc.StatusCode.ALREADY_EXISTS, "email-taken")


async def test_concurrent_registrations_with_one_key_create_one_account(users, db):
    email, key = new_email(), str(uuid.uuid4())

    answers = await asyncio.gather(*(users.Register(registration(email, key)) for _ in range(3)))

    assert len({answer.user.id for answer in answers}) == 1
    assert await user_registered_events(db, answers[0].user.id) == 1


@pytest.mark.parametrize(
    "changed",
    [
        {"email": "other"},
        {"password": "another password"},
        {"full_name": "Somebody Else"},
    ],
)
async def test_a_key_used_with_another_request_is_refused(users, changed):
    email, key = new_email(), str(uuid.uuid4())
    await users.Register(registration(email, key))
    request = registration(email, key)
    if "email" in changed:
        request.email = new_email()
    if "password" in changed:
        request.password = changed["password"]
    if "full_name" in changed:
        request.full_name = changed["full_name"]

    err = await rpc_error(users.Register(request))

    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason(err) == "idempotency-key-reused"
    assert err.details().startswith("idempotency_key:")
    if "email" in changed:  # nothing was created for the refused request
        refused = await rpc_error(
            users.Login(users_pb2.LoginRequest(email=request.email, password=PASSWORD))
        )
        assert refused.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_concurrent_registrations_of_two_emails_with_one_key_create_one(users):
    key = str(uuid.uuid4())
    emails = [new_email(), new_email()]

    results = await asyncio.gather(
        *(users.Register(registration(email, key)) for email in emails), return_exceptions=True
    )

    created = [r for r in results if isinstance(r, users_pb2.TokenResponse)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(created) == 1
    assert [reason(err) for err in refused] == ["idempotency-key-reused"]
    loser = next(email for email in emails if email != created[0].user.email)
    err = await rpc_error(users.Login(users_pb2.LoginRequest(email=loser, password=PASSWORD)))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_the_key_is_stored_only_as_a_hash_and_forgotten_after_a_day(users, db):
    email, key = new_email(), f"key-{uuid.uuid4()}"
    await users.Register(registration(email, key))
    async with db.session_scope() as session:
        record = await session.scalar(
            select(RegistrationKey).where(
                RegistrationKey.key_hash == hashlib.sha256(key.encode()).hexdigest()
            )
        )
        assert record is not None
        stored = f"{record.key_hash} {record.request_hash}"
        assert key not in stored and email not in stored
        assert record.expires_at - record.created_at == dt.timedelta(hours=24)
        record.expires_at = utcnow() - dt.timedelta(seconds=1)

    # Forgotten: a retry is a new registration (the email is taken), and the
    # key is free for another one.
    err = await rpc_error(users.Register(registration(email, key)))
    assert (err.code(), reason(err)) == (grpc.StatusCode.ALREADY_EXISTS, "email-taken")
    assert (await users.Register(registration(new_email(), key))).user.id


async def test_an_overlong_idempotency_key_is_invalid(users):
    err = await rpc_error(users.Register(registration(new_email(), "k" * 256)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("idempotency_key:")
