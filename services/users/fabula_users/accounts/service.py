"""Account rules: registration, login, refresh-token rotation, lookup.

Every method takes the caller's session and never commits; the edge owns the
transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
import uuid
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email
from fabula.users.v1 import events_pb2
from fabula_common.db import utcnow
from fabula_common.errors import AlreadyExists, InvalidArgument, NotFound, Unauthenticated
from fabula_common.messaging.bus import subject_for
from fabula_common.messaging.outbox import enqueue
from fabula_common.tokens import issue_access_token
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_users.accounts import repository
from fabula_users.accounts.models import EMAIL_MAX_LENGTH, FULL_NAME_MAX_LENGTH, RefreshToken, User
from fabula_users.accounts.passwords import PasswordHashing
from fabula_users.database import outbox
from fabula_users.settings import Settings

log = logging.getLogger(__name__)

PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128
# One answer for an unknown email and a wrong password: callers must not be
# able to tell which emails have accounts.
INVALID_CREDENTIALS = "invalid email or password"
INVALID_REFRESH_TOKEN = "invalid or expired refresh token"
REFRESH_TOKEN_BYTES = 32


class RefreshTokenReused(Unauthenticated):
    """A token that was already rotated away came back: someone else holds a
    copy. Its family has been revoked in the session, and that revocation must
    be committed although the call fails."""


@dataclass(frozen=True)
class IssuedTokens:
    user: User
    access_token: str
    access_token_expires_in: int
    refresh_token: str


def normalise_email(raw: str) -> str:
    try:
        validated = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidArgument(f"email: {exc}") from None
    email = validated.normalized.lower()
    if len(email) > EMAIL_MAX_LENGTH:
        raise InvalidArgument(f"email: must be at most {EMAIL_MAX_LENGTH} characters")
    return email


def check_password(password: str) -> None:
    if not PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH:
        raise InvalidArgument(
            f"password: must be {PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters long"
        )


def normalise_full_name(raw: str) -> str:
    full_name = raw.strip()
    if "\x00" in full_name:  # Postgres text cannot hold NUL
        raise InvalidArgument("full_name: must not contain NUL characters")
    if len(full_name) > FULL_NAME_MAX_LENGTH:
        raise InvalidArgument(f"full_name: must be at most {FULL_NAME_MAX_LENGTH} characters")
    return full_name


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _invalid_credentials() -> Unauthenticated:
    return Unauthenticated(INVALID_CREDENTIALS, reason="invalid-credentials")


class UsersService:
    def __init__(self, settings: Settings, passwords: PasswordHashing) -> None:
        self.settings = settings
        self.passwords = passwords
        self.user_registered_subject = subject_for(settings, "users", "user_registered")

    async def register(
        self, session: AsyncSession, *, email: str, password: str, full_name: str
    ) -> IssuedTokens:
        email = normalise_email(email)
        check_password(password)
        full_name = normalise_full_name(full_name)
        # Hash before the first query: the session takes a pooled connection
        # only then, so none is held through the slow part.
        password_hash = await self.passwords.hash(password)
        user = await repository.create_user(
            session,
            email=email, password_hash=password_hash, full_name=full_name
        )
        if user is None:
            raise AlreadyExists(
                "email: an account with this email already exists", reason="email-taken"
            )
        await enqueue(
            session,
            outbox,
            self.user_registered_subject,
            events_pb2.UserRegistered(
                event_id=str(uuid.uuid4()),
                user_id=str(user.id),
                email=user.email,
                occurred_at=user.created_at,
            ),
        )
        issued, _ = await self._issue(session, user, family_id=uuid.uuid4())
        return issued

    # Logging in takes three steps so that no database connection is held
    # while argon2 works (tens to hundreds of milliseconds, by design):
    # find the user, verify the password outside any transaction, then issue.

    async def find_for_login(self, session: AsyncSession, email: str) -> User | None:
        try:
            return await repository.get_user_by_email(session, normalise_email(email))
        except InvalidArgument:
            return None  # a malformed email is just an unknown one here

    async def verify_login(self, user: User | None, password: str) -> str | None:
        """Raise Unauthenticated unless `password` is the user's; return a new
        hash when the stored one was made with other argon2 parameters."""
        if user is None or len(password) > PASSWORD_MAX_LENGTH:
            # Same work as a real check, so the answer's timing is the same too.
            await self.passwords.verify_dummy(password[:PASSWORD_MAX_LENGTH])
            raise _invalid_credentials()
        if not await self.passwords.verify(user.password_hash, password):
            raise _invalid_credentials()
        if self.passwords.needs_rehash(user.password_hash):
            return await self.passwords.hash(password)
        return None

    async def issue_for_login(
        self, session: AsyncSession, user: User, new_password_hash: str | None
    ) -> IssuedTokens:
        if new_password_hash is not None:
            await repository.set_password_hash(session, user, new_password_hash)
        issued, _ = await self._issue(session, user, family_id=uuid.uuid4())
        return issued

    async def refresh(self, session: AsyncSession, refresh_token: str) -> IssuedTokens:
        """Rotate: the presented token is revoked and a new one of the same
        family issued. Raises RefreshTokenReused for a revoked token."""
        stored = None
        if refresh_token:
            stored = await repository.get_refresh_token_for_update(
                session, hash_refresh_token(refresh_token)
            )
        if stored is None:
            raise Unauthenticated(INVALID_REFRESH_TOKEN)
        if stored.revoked_at is not None:
            revoked = await repository.revoke_token_family(session, stored.family_id)
            log.warning(
                "revoked refresh token presented again: family %s of user %s revoked "
                "(%d live tokens)",
                stored.family_id,
                stored.user_id,
                revoked,
            )
            raise RefreshTokenReused(INVALID_REFRESH_TOKEN)
        if stored.expires_at <= utcnow():
            raise Unauthenticated(INVALID_REFRESH_TOKEN)
        user = await repository.get_user(session, stored.user_id)
        if user is None:  # the foreign key cascades, so only a race with a deletion
            raise Unauthenticated(INVALID_REFRESH_TOKEN)
        issued, replacement = await self._issue(session, user, family_id=stored.family_id)
        await repository.mark_rotated(session, stored, replaced_by=replacement)
        return issued

    async def get_user(self, session: AsyncSession, user_id: str) -> User:
        # A malformed id names no user: NOT_FOUND, like any other unknown id.
        try:
            parsed = uuid.UUID(user_id)
        except ValueError:
            raise NotFound("user not found") from None
        user = await repository.get_user(session, parsed)
        if user is None:
            raise NotFound("user not found")
        return user

    async def _issue(
        self, session: AsyncSession, user: User, *, family_id: uuid.UUID
    ) -> tuple[IssuedTokens, RefreshToken]:
        access_token, expires_in = issue_access_token(self.settings, str(user.id))
        refresh_token = secrets.token_urlsafe(REFRESH_TOKEN_BYTES)
        stored = await repository.add_refresh_token(
            session,
            user_id=user.id,
            family_id=family_id,
            token_hash=hash_refresh_token(refresh_token),
            expires_at=utcnow() + dt.timedelta(seconds=self.settings.refresh_token_ttl_seconds),
        )
        issued = IssuedTokens(
            user=user,
            access_token=access_token,
            access_token_expires_in=expires_in,
            refresh_token=refresh_token,
        )
        return issued, stored

    async def purge_expired_refresh_tokens(self, session: AsyncSession) -> int:
        cutoff = utcnow() - dt.timedelta(seconds=self.settings.refresh_token_retention_seconds)
        return await repository.delete_refresh_tokens_expired_before(session, cutoff)
