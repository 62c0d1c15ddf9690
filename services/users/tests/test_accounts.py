"""Profiles, emailed tokens (verification, password reset), the mailer and login
throttling, over real gRPC, Postgres and NATS, with mail delivered to a real
local SMTP server (aiosmtpd) that the test reads the tokens from."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import re
import time
import uuid
from email.message import EmailMessage

import grpc
import pytest
from aiosmtpd.controller import Controller
from fabula.users.v1 import users_pb2, users_pb2_grpc
from fabula_common.db import Database, utcnow
from fabula_common.errors import error_details
from fabula_common.testing import free_port, running_app
from fabula_users.accounts.models import AccountToken, LoginFailures, User
from fabula_users.app import create_app
from fabula_users.mail.models import OutgoingMail
from fabula_users.settings import Settings
from sqlalchemy import select, update

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"
APP_BASE_URL = "https://app.example.test"
MAX_FAILURES = 10
MAX_FAILURES_PER_ADDRESS = 15


class Inbox:
    """aiosmtpd handler keeping every delivered message."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(message)
        return "250 OK"

    def to(self, recipient: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == recipient]

    async def wait_for(self, recipient: str, count: int = 1, timeout: float = 10) -> EmailMessage:
        deadline = time.monotonic() + timeout
        while len(self.to(recipient)) < count:
            assert time.monotonic() < deadline, f"no mail number {count} to {recipient}"
            await asyncio.sleep(0.05)
        return self.to(recipient)[count - 1]


def token_in(message: EmailMessage, path: str) -> str:
    text = message.get_body(("plain",)).get_content()
    match = re.search(re.escape(APP_BASE_URL + path) + r"\?token=([A-Za-z0-9_\-]+)", text)
    assert match, text
    return match.group(1)


@pytest.fixture(scope="module")
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


@pytest.fixture(scope="module")
async def settings(test_database, test_stream, smtp):
    controller, _ = smtp
    return Settings(
        grpc_port=free_port(),
        smtp_host="127.0.0.1",
        smtp_port=controller.port,
        smtp_tls="none",
        app_base_url=APP_BASE_URL,
        mail_poll_seconds=0.2,
        login_max_failures=MAX_FAILURES,
        login_max_failures_per_address=MAX_FAILURES_PER_ADDRESS,
        login_failure_delay_seconds=0,
    )


@pytest.fixture(scope="module")
async def users(settings):
    async with (
        running_app(create_app(settings)) as address,
        grpc.aio.insecure_channel(address) as channel,
    ):
        yield users_pb2_grpc.UsersServiceStub(channel)


@pytest.fixture(scope="module")
def inbox(smtp) -> Inbox:
    return smtp[1]


@pytest.fixture(scope="module")
async def db(test_database):
    database = Database(Settings())
    yield database
    await database.dispose()


def new_email() -> str:
    return f"member-{uuid.uuid4().hex[:12]}@example.com"


async def register(users, email: str | None = None) -> users_pb2.TokenResponse:
    return await users.Register(
        users_pb2.RegisterRequest(email=email or new_email(), password=PASSWORD)
    )


async def rpc_error(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_registering_sends_a_verification_link_that_verifies_once(users, inbox, db):
    registered = await register(users)
    assert not registered.user.is_verified
    message = await inbox.wait_for(registered.user.email)
    assert message["Subject"] == "Confirm your email address"
    token = token_in(message, "/verify-email")

    verified = await users.VerifyEmail(users_pb2.VerifyEmailRequest(token=token))
    assert verified.is_verified and verified.id == registered.user.id
    got = await users.GetUser(users_pb2.GetUserRequest(user_id=registered.user.id))
    assert got.is_verified

    err = await rpc_error(users.VerifyEmail(users_pb2.VerifyEmailRequest(token=token)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(err).reason == "invalid-token"
    # Nothing to verify any more.
    err = await rpc_error(
        users.RequestEmailVerification(
            users_pb2.RequestEmailVerificationRequest(user_id=registered.user.id)
        )
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(err).reason == "already-verified"

    # Only hashes are stored, and the sent message's text (its token) is gone.
    async with db.session_scope() as session:
        stored = await session.scalar(
            select(AccountToken).where(AccountToken.user_id == uuid.UUID(registered.user.id))
        )
        sent = (
            await session.scalars(
                select(OutgoingMail).where(OutgoingMail.recipient == registered.user.email)
            )
        ).all()
    assert token not in (stored.token_hash, stored.id.hex)
    assert stored.used_at is not None
    assert [(m.sent_at is not None, m.body) for m in sent] == [(True, None)]


async def test_an_expired_or_unknown_verification_token_is_refused(users, inbox, db):
    registered = await register(users)
    token = token_in(await inbox.wait_for(registered.user.email), "/verify-email")
    # Asked again at once: refused for a minute, saying when (no second email).
    err = await rpc_error(
        users.RequestEmailVerification(
            users_pb2.RequestEmailVerificationRequest(user_id=registered.user.id)
        )
    )
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = error_details(err)
    assert details.reason == "rate-limited" and details.retry_after == 60

    # The link is two days old.
    async with db.session_scope() as session:
        await session.execute(
            update(AccountToken)
            .where(AccountToken.user_id == uuid.UUID(registered.user.id))
            .values(
                created_at=utcnow() - dt.timedelta(days=2),
                expires_at=utcnow() - dt.timedelta(seconds=1),
            )
        )
    for candidate in (token, "not-a-token", ""):
        err = await rpc_error(users.VerifyEmail(users_pb2.VerifyEmailRequest(token=candidate)))
        assert error_details(err).reason == "invalid-token"

    # A new request sends a new link that works.
    await users.RequestEmailVerification(
        users_pb2.RequestEmailVerificationRequest(user_id=registered.user.id)
    )
    fresh = token_in(await inbox.wait_for(registered.user.email, 2), "/verify-email")
    assert (await users.VerifyEmail(users_pb2.VerifyEmailRequest(token=fresh))).is_verified


async def test_password_reset_sets_the_password_and_ends_every_session(users, inbox):
    registered = await register(users)
    email = registered.user.email
    other_session = await users.Login(users_pb2.LoginRequest(email=email, password=PASSWORD))

    # An unknown address gets the same answer, and no mail.
    unknown = new_email()
    await users.RequestPasswordReset(users_pb2.RequestPasswordResetRequest(email=unknown))
    await users.RequestPasswordReset(users_pb2.RequestPasswordResetRequest(email=email.upper()))
    message = await inbox.wait_for(email, 2)  # after the verification email
    assert message["Subject"] == "Reset your password"
    # Asked again at once: no second email (nobody can flood an inbox).
    await users.RequestPasswordReset(users_pb2.RequestPasswordResetRequest(email=email))
    await asyncio.sleep(0.5)
    assert len(inbox.to(email)) == 2
    token = token_in(message, "/reset-password")
    assert inbox.to(unknown) == []

    # Too short a password is refused before the token is spent.
    err = await rpc_error(
        users.ResetPassword(users_pb2.ResetPasswordRequest(token=token, new_password="short"))
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    await users.ResetPassword(
        users_pb2.ResetPasswordRequest(token=token, new_password=NEW_PASSWORD)
    )

    for old in (registered.refresh_token, other_session.refresh_token):
        err = await rpc_error(users.Refresh(users_pb2.RefreshRequest(refresh_token=old)))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    err = await rpc_error(users.Login(users_pb2.LoginRequest(email=email, password=PASSWORD)))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    logged_in = await users.Login(users_pb2.LoginRequest(email=email, password=NEW_PASSWORD))
    assert logged_in.user.id == registered.user.id
    # The emailed token proved the address.
    assert logged_in.user.is_verified

    err = await rpc_error(
        users.ResetPassword(users_pb2.ResetPasswordRequest(token=token, new_password=PASSWORD))
    )
    assert error_details(err).reason == "invalid-token"


async def test_profile_fields_are_changed_as_named_and_checked(users):
    registered = await register(users)
    user_id = registered.user.id
    assert registered.user.locale == "en" and registered.user.has_password

    updated = await users.UpdateProfile(
        users_pb2.UpdateProfileRequest(
            user_id=user_id,
            fields=["full_name", "avatar_url", "birthdate", "locale"],
            full_name=" Ada ",
            avatar_url="https://cdn.example.com/ada.png",
            birthdate="2015-06-01",
            locale="de",
        )
    )
    assert (updated.full_name, updated.avatar_url, updated.birthdate, updated.locale) == (
        "Ada",
        "https://cdn.example.com/ada.png",
        "2015-06-01",
        "de",
    )
    # Only the named fields change; empty clears avatar and birthdate.
    cleared = await users.UpdateProfile(
        users_pb2.UpdateProfileRequest(
            user_id=user_id, fields=["avatar_url", "birthdate"], full_name="ignored"
        )
    )
    assert (cleared.full_name, cleared.avatar_url, cleared.birthdate, cleared.locale) == (
        "Ada",
        "",
        "",
        "de",
    )

    tomorrow = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=2)).isoformat()
    for field, value in [
        ("avatar_url", "ftp://example.com/a.png"),
        ("avatar_url", "javascript:alert(1)"),
        ("birthdate", tomorrow),
        ("birthdate", "01.06.2015"),
        ("birthdate", "2015-02-30"),
        ("locale", "fr"),
        ("full_name", "n" * 201),
    ]:
        err = await rpc_error(
            users.UpdateProfile(
                users_pb2.UpdateProfileRequest(user_id=user_id, fields=[field], **{field: value})
            )
        )
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (field, value)
        assert err.details().startswith(f"{field}:"), err.details()
    err = await rpc_error(
        users.UpdateProfile(users_pb2.UpdateProfileRequest(user_id=user_id, fields=["email"]))
    )
    assert err.details().startswith("fields:")


async def test_a_german_account_gets_german_mail(users, inbox):
    registered = await register(users)
    await users.UpdateProfile(
        users_pb2.UpdateProfileRequest(user_id=registered.user.id, fields=["locale"], locale="de")
    )
    await users.RequestPasswordReset(
        users_pb2.RequestPasswordResetRequest(email=registered.user.email)
    )
    message = await inbox.wait_for(registered.user.email, 2)
    assert message["Subject"] == "Passwort zurücksetzen"
    assert "Link" in message.get_body(("plain",)).get_content()


async def test_changing_the_email_needs_the_password_and_verification(users, inbox):
    registered = await register(users)
    user_id = registered.user.id
    old_token = token_in(await inbox.wait_for(registered.user.email), "/verify-email")
    taken = (await register(users)).user.email
    new = new_email()

    err = await rpc_error(
        users.ChangeEmail(
            users_pb2.ChangeEmailRequest(user_id=user_id, new_email=new, password="wrong one!")
        )
    )
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    err = await rpc_error(
        users.ChangeEmail(
            users_pb2.ChangeEmailRequest(user_id=user_id, new_email=taken, password=PASSWORD)
        )
    )
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS

    changed = await users.ChangeEmail(
        users_pb2.ChangeEmailRequest(user_id=user_id, new_email=new.upper(), password=PASSWORD)
    )
    assert (changed.email, changed.is_verified) == (new, False)
    # The link sent to the old address no longer verifies anything.
    err = await rpc_error(users.VerifyEmail(users_pb2.VerifyEmailRequest(token=old_token)))
    assert error_details(err).reason == "invalid-token"
    token = token_in(await inbox.wait_for(new), "/verify-email")
    verified = await users.VerifyEmail(users_pb2.VerifyEmailRequest(token=token))
    assert (verified.email, verified.is_verified) == (new, True)


async def test_logins_are_refused_after_ten_failures_even_with_the_right_password(users, db):
    registered = await register(users)
    email = registered.user.email
    # No client address: only the account's count applies here.
    wrong = users_pb2.LoginRequest(email=email, password="wrong password!")
    right = users_pb2.LoginRequest(email=email, password=PASSWORD)

    # A success resets the count: 9 failures, a success, then 10 more allowed.
    for _ in range(MAX_FAILURES - 1):
        assert (await rpc_error(users.Login(wrong))).code() == grpc.StatusCode.UNAUTHENTICATED
    await users.Login(right)
    # Concurrent attempts cannot slip past the limit.
    results = await asyncio.gather(
        *(rpc_error(users.Login(wrong)) for _ in range(MAX_FAILURES + 5))
    )
    codes = [err.code() for err in results]
    assert codes.count(grpc.StatusCode.UNAUTHENTICATED) == MAX_FAILURES, codes
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 5, codes

    err = await rpc_error(users.Login(right))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = error_details(err)
    assert details.reason == "too-many-attempts"
    assert 14 * 60 < details.retry_after <= 15 * 60

    # Once the window since the last failure has passed, the right password works.
    async with db.session_scope() as session:
        await session.execute(
            update(LoginFailures).values(
                last_failure_at=LoginFailures.last_failure_at - dt.timedelta(minutes=15)
            )
        )
    assert (await users.Login(right)).user.id == registered.user.id


async def test_one_address_failing_on_many_accounts_is_refused(users):
    address = f"192.0.2.{uuid.uuid4().int % 250}"
    for _ in range(MAX_FAILURES_PER_ADDRESS):
        request = users_pb2.LoginRequest(email=new_email(), password="guess!!!", client_ip=address)
        assert (await rpc_error(users.Login(request))).code() == grpc.StatusCode.UNAUTHENTICATED
    registered = await register(users)
    err = await rpc_error(
        users.Login(
            users_pb2.LoginRequest(
                email=registered.user.email, password=PASSWORD, client_ip=address
            )
        )
    )
    assert error_details(err).reason == "too-many-attempts"
    # Another address is served.
    other = users_pb2.LoginRequest(
        email=registered.user.email, password=PASSWORD, client_ip="198.51.100.7"
    )
    assert (await users.Login(other)).user.id == registered.user.id


async def test_last_login_is_recorded_at_login_not_registration_or_refresh(users, db):
    registered = await register(users)
    assert not registered.user.HasField("last_login_at")
    logged_in = await users.Login(
        users_pb2.LoginRequest(email=registered.user.email, password=PASSWORD)
    )
    first = logged_in.user.last_login_at.ToDatetime(dt.UTC)
    assert abs(first - utcnow()) < dt.timedelta(minutes=1)
    refreshed = await users.Refresh(
        users_pb2.RefreshRequest(refresh_token=logged_in.refresh_token)
    )
    assert refreshed.user.last_login_at.ToDatetime(dt.UTC) == first
    async with db.session_scope() as session:
        stored = await session.get(User, uuid.UUID(registered.user.id))
    assert stored.last_login_at == first
