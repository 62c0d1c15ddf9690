"""All SQL of identities and pending sign-ins (the caller's session first;
none commits)."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_users.accounts.models import User
from fabula_users.identities.models import Identity, PendingSignIn

# --- Pending sign-ins ----------------------------------------------------------------


async def add_pending_sign_in(session: AsyncSession, pending: PendingSignIn) -> None:
    session.add(pending)
    await session.flush()


async def take_pending_sign_in(session: AsyncSession, state_hash: str) -> PendingSignIn | None:
    """Delete and return it: of two callbacks with one state, one gets it."""
    return await session.scalar(
        delete(PendingSignIn).where(PendingSignIn.state_hash == state_hash).returning(PendingSignIn)
    )


async def delete_pending_sign_ins_expired_before(session: AsyncSession, cutoff: dt.datetime) -> int:
    result = await session.execute(
        delete(PendingSignIn)
        .where(PendingSignIn.expires_at < cutoff)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


# --- Identities ------------------------------------------------------------------------


async def get_identity(session: AsyncSession, provider: str, subject: str) -> Identity | None:
    return await session.scalar(
        select(Identity).where(Identity.provider == provider, Identity.subject == subject)
    )


async def add_identity(
    session: AsyncSession, *, user_id: uuid.UUID, provider: str, subject: str, email: str
) -> Identity | None:
    """The new link, or None when the identity is linked already (also by a
    concurrent sign-in: the unique constraint decides)."""
    return await session.scalar(
        insert(Identity)
        .values(id=uuid.uuid4(), user_id=user_id, provider=provider, subject=subject, email=email)
        .on_conflict_do_nothing(index_elements=[Identity.provider, Identity.subject])
        .returning(Identity)
    )


async def list_identities(session: AsyncSession, user_id: uuid.UUID) -> list[Identity]:
    result = await session.scalars(
        select(Identity)
        .where(Identity.user_id == user_id)
        .order_by(Identity.created_at, Identity.id)
    )
    return list(result)


async def count_identities(session: AsyncSession, user_id: uuid.UUID) -> int:
    return (
        await session.scalar(
            select(func.count()).select_from(Identity).where(Identity.user_id == user_id)
        )
        or 0
    )


async def delete_identity(session: AsyncSession, identity: Identity) -> None:
    await session.delete(identity)
    await session.flush()


# --- Accounts made by signing in --------------------------------------------------------


async def create_passwordless_user(
    session: AsyncSession, *, email: str, full_name: str, is_verified: bool
) -> User | None:
    """A new account without a password, or None when the email is taken."""
    return await session.scalar(
        insert(User)
        .values(
            id=uuid.uuid4(),
            email=email,
            password_hash=None,
            full_name=full_name,
            is_verified=is_verified,
        )
        .on_conflict_do_nothing(index_elements=[User.email])
        .returning(User)
    )


async def get_user_for_update(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    """Locked: two unlinks of one account's identities are decided one after the other."""
    return await session.scalar(
        select(User)
        .where(User.id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
