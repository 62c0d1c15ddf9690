"""Queries of export and import."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_stories.stories.models import Segment, Story


async def story_of(session: AsyncSession, user_id: uuid.UUID, story_id: uuid.UUID) -> Any | None:
    """The user's story (title, genre, characters); None when it is not theirs."""
    found = await session.execute(
        select(Story.id, Story.title, Story.genre, Story.characters).where(
            Story.id == story_id, Story.user_id == user_id
        )
    )
    return found.first()


async def followed_path_texts(session: AsyncSession, story_id: uuid.UUID) -> list[str]:
    """The texts of the path the story follows, in story order (one index range)."""
    texts = await session.execute(
        select(Segment.text)
        .where(Segment.story_id == story_id, Segment.on_path)
        .order_by(Segment.position)
    )
    return list(texts.scalars())


async def insert_story_once(session: AsyncSession, values: dict[str, Any]) -> uuid.UUID | None:
    """Insert an imported story unless the user already has one with its
    (import_source, import_original_id): its id, or None when it was there.
    A concurrent import of the same story waits for the other's transaction
    and then finds its row (the unique index decides, not a prior read)."""
    statement = (
        pg_insert(Story)
        .values(**values)
        .on_conflict_do_nothing(
            index_elements=[Story.user_id, Story.import_source, Story.import_original_id],
            index_where=Story.import_source.is_not(None),
        )
        .returning(Story.id)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def imported_story_id(
    session: AsyncSession, user_id: uuid.UUID, source: str, original_id: str
) -> uuid.UUID | None:
    found = await session.execute(
        select(Story.id).where(
            Story.user_id == user_id,
            Story.import_source == source,
            Story.import_original_id == original_id,
        )
    )
    return found.scalar_one_or_none()


async def insert_segments(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    # Each row's parent comes before it, so the parent key holds row by row.
    await session.execute(insert(Segment), list(rows))
