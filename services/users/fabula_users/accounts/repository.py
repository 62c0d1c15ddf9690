"""All SQL of the users service. Every function takes the caller's session
and never commits."""

from __future__ import annotations

import datetime as dt
import uuid

from fabula_common.db import utcnow
from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_users.accounts.models import RefreshToken, User


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, *, email: str, password_hash: str, full_name: str) -> User | None:
        """The new user, or None when the email is taken (also by a concurrent
        registration: the unique constraint decides, without an error that
        would abort the transaction)."""
        statement = (
            insert(User)
            .values(id=uuid.uuid4(), email=email, password_hash=password_hash, full_name=full_name)
            .on_conflict_do_nothing(index_elements=[User.email])
            .returning(User)
        )
        return await self.session.scalar(statement)

    async def get(self, user_id: uuid.UUID) -> User | None:
        return await self.session.get(User, user_id)

    async def get_by_email(self, email: str) -> User | None:
        return await self.session.scalar(select(User).where(User.email == email))

    async def set_password_hash(self, user: User, password_hash: str) -> None:
        # By id: `user` may come from an earlier transaction (login verifies
        # the password between two).
        now = utcnow()
        await self.session.execute(
            update(User).where(User.id == user.id).values(password_hash=password_hash, updated_at=now)
        )
        user.password_hash, user.updated_at = password_hash, now


class RefreshTokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self, *, user_id: uuid.UUID, family_id: uuid.UUID, token_hash: str, expires_at: dt.datetime
    ) -> RefreshToken:
        token = RefreshToken(
            id=uuid.uuid4(),
            user_id=user_id,
            family_id=family_id,
            token_hash=token_hash,
            expires_at=expires_at,
        )
        self.session.add(token)
        await self.session.flush()
        return token

    async def get_by_hash_for_update(self, token_hash: str) -> RefreshToken | None:
        """Locks the row until the transaction ends: of two concurrent
        refreshes with one token, the second waits and then sees it revoked."""
        return await self.session.scalar(
            select(RefreshToken)
            .where(RefreshToken.token_hash == token_hash)
            .with_for_update()
            # A row cached by this session must not hide the locked version.
            .execution_options(populate_existing=True)
        )

    async def mark_rotated(self, token: RefreshToken, replaced_by: RefreshToken) -> None:
        token.revoked_at = utcnow()
        token.replaced_by_id = replaced_by.id
        await self.session.flush()

    async def revoke_family(self, family_id: uuid.UUID) -> int:
        """Revoke every live token of the family; return how many."""
        result = await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return result.rowcount

    async def delete_expired_before(self, cutoff: dt.datetime) -> int:
        result = await self.session.execute(
            delete(RefreshToken)
            .where(RefreshToken.expires_at < cutoff)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount
