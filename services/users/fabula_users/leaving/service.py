"""Leaving: the user's export of what this service holds, and deleting the account.

Deleting is one transaction: the account's row goes (its refresh tokens and
registration keys cascade) and UserDeleted is enqueued in the outbox, on which
every other service deletes or anonymises what it holds for the user.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass, field

from fabula.users.v1 import events_pb2, users_pb2
from fabula_common.db import utcnow
from fabula_common.errors import NotFound, Unauthenticated
from fabula_common.messaging.bus import subject_for
from fabula_common.messaging.outbox import enqueue
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_users.accounts.models import User
from fabula_users.accounts.passwords import PasswordHashing
from fabula_users.accounts.service import PASSWORD_MAX_LENGTH
from fabula_users.api_keys import service as api_keys
from fabula_users.api_keys.servicer import api_key_to_proto
from fabula_users.database import outbox
from fabula_users.identities import repository as identities_repository
from fabula_users.identities.servicer import identity_to_proto
from fabula_users.leaving import repository
from fabula_users.settings import Settings

log = logging.getLogger(__name__)

# A token issued a little in the future is clock skew between processes, as
# the gateway's token check allows.
CLOCK_SKEW = dt.timedelta(seconds=5)


@dataclass
class UserData:
    """Everything the users service holds about one user, secrets left out."""

    user: User
    identities: list[users_pb2.Identity] = field(default_factory=list)
    api_keys: list[users_pb2.ApiKey] = field(default_factory=list)


def password_required() -> Unauthenticated:
    return Unauthenticated(
        "password: required to delete the account (or sign in again and delete within "
        "a few minutes)",
        reason="password-required",
    )


def wrong_password() -> Unauthenticated:
    return Unauthenticated("password: wrong password", reason="invalid-credentials")


def parse_user_id(user_id: str) -> uuid.UUID:
    # A malformed id names no user: NOT_FOUND, like any other unknown id.
    try:
        return uuid.UUID(user_id)
    except ValueError:
        raise NotFound("user not found") from None


class LeavingService:
    def __init__(self, settings: Settings, passwords: PasswordHashing) -> None:
        self.passwords = passwords
        self.fresh_sign_in = dt.timedelta(seconds=settings.fresh_sign_in_seconds)
        self.user_deleted_subject = subject_for(settings, "users", "user_deleted")

    async def export(self, session: AsyncSession, user_id: str) -> UserData:
        user = await repository.get_user(session, parse_user_id(user_id))
        if user is None:
            raise NotFound("user not found")
        return UserData(
            user,
            identities=[
                identity_to_proto(identity)
                for identity in await identities_repository.list_identities(session, user.id)
            ],
            # Their hashes stay here: a key is shown once, when it is made.
            api_keys=[
                api_key_to_proto(key) for key in await api_keys.list_for_user(session, str(user.id))
            ],
        )

    def signed_in_freshly(self, signed_in_at: dt.datetime | None) -> bool:
        if signed_in_at is None:
            return False
        now = utcnow()
        return now - self.fresh_sign_in <= signed_in_at <= now + CLOCK_SKEW

    async def find_for_deletion(self, session: AsyncSession, user_id: str) -> User:
        user = await repository.get_user(session, parse_user_id(user_id))
        if user is None:
            raise NotFound("user not found")
        return user

    async def confirm_deletion(
        self, user: User, password: str, signed_in_at: dt.datetime | None
    ) -> None:
        """The caller proves it is the user: a sign-in within the last
        USERS_FRESH_SIGN_IN_SECONDS, else the password. Called outside any
        transaction (argon2 takes its time)."""
        if self.signed_in_freshly(signed_in_at) and not password:
            return
        if not password:
            raise password_required()
        if len(password) > PASSWORD_MAX_LENGTH or not await self.passwords.verify(
            user.password_hash, password
        ):
            raise wrong_password()

    async def delete(self, session: AsyncSession, user_id: uuid.UUID) -> None:
        """Delete the account and enqueue UserDeleted in the same transaction.
        NotFound when it is gone already (a concurrent deletion won)."""
        if not await repository.delete_user(session, user_id):
            raise NotFound("user not found")
        await enqueue(
            session,
            outbox,
            self.user_deleted_subject,
            events_pb2.UserDeleted(
                event_id=str(uuid.uuid4()), user_id=str(user_id), occurred_at=utcnow()
            ),
        )
        log.info("user %s deleted; UserDeleted enqueued", user_id)
