"""SQL of leaving: session first, never commits."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_users.accounts.models import User


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return (await session.execute(select(User).where(User.id == user_id))).scalar_one_or_none()


async def delete_user(session: AsyncSession, user_id: uuid.UUID) -> bool:
    """Delete the account; every table of the schema that names a user refers
    to users.id ON DELETE CASCADE, so its rows go with it."""
    deleted = await session.execute(delete(User).where(User.id == user_id).returning(User.id))
    return deleted.scalar_one_or_none() is not None
