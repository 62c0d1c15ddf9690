"""SQL of the idempotency domain."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import delete, exists, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_stories.idempotency.models import IdempotencyKey
from fabula_stories.stories.models import PendingGeneration, Segment, Story


async def insert_new(session: AsyncSession, record: IdempotencyKey) -> bool:
    """Insert the record; False when the user already has a record of the key
    (also one a concurrent transaction is writing: this waits for it)."""
    statement = (
        insert(IdempotencyKey)
        .values(
            user_id=record.user_id,
            key_hash=record.key_hash,
            operation=record.operation,
            request_hash=record.request_hash,
            generation_id=record.generation_id,
            story_id=record.story_id,
            segment_id=None,
            created_at=record.created_at,
            expires_at=record.expires_at,
        )
        .on_conflict_do_nothing(index_elements=[IdempotencyKey.user_id, IdempotencyKey.key_hash])
        .returning(IdempotencyKey.key_hash)
    )
    return await session.scalar(statement) is not None


async def lock(session: AsyncSession, user_id: uuid.UUID, key_hash: str) -> IdempotencyKey | None:
    """The user's record of the key, locked until the transaction ends."""
    return await session.scalar(
        select(IdempotencyKey)
        .where(IdempotencyKey.user_id == user_id, IdempotencyKey.key_hash == key_hash)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def claim_pending(session: AsyncSession, generation_id: uuid.UUID) -> bool:
    """Whether the generation's claim still lives (its writer may store it)."""
    query = select(exists().where(PendingGeneration.generation_id == generation_id))
    return bool(await session.scalar(query))


async def finish(
    session: AsyncSession,
    user_id: uuid.UUID,
    key_hash: str,
    generation_id: uuid.UUID,
    segment_id: uuid.UUID,
) -> bool:
    """Record the segment the attempt of `generation_id` stored; False when
    the record no longer belongs to that attempt."""
    result = await session.execute(
        update(IdempotencyKey)
        .where(
            IdempotencyKey.user_id == user_id,
            IdempotencyKey.key_hash == key_hash,
            IdempotencyKey.generation_id == generation_id,
        )
        .values(segment_id=segment_id)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


async def get_segment(
    session: AsyncSession, user_id: uuid.UUID, segment_id: uuid.UUID
) -> Segment | None:
    """The segment, if it belongs to a story of the user's."""
    query = (
        select(Segment)
        .join(Story, Story.id == Segment.story_id)
        .where(Segment.id == segment_id, Story.user_id == user_id)
    )
    return await session.scalar(query)


async def delete_expired(session: AsyncSession, now: dt.datetime, limit: int) -> int:
    """Delete up to `limit` records that expired before `now`; how many."""
    expired = (
        select(IdempotencyKey.user_id, IdempotencyKey.key_hash)
        .where(IdempotencyKey.expires_at < now)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        delete(IdempotencyKey)
        .where(tuple_(IdempotencyKey.user_id, IdempotencyKey.key_hash).in_(expired))
        .execution_options(synchronize_session=False)
    )
    return result.rowcount
