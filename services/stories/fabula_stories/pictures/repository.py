"""All SQL of the pictures domain: module functions, session first, never commit."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import delete, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_stories.pictures.models import Drawing, DrawingEdit, PictureStory, Tutorial


async def list_tutorials(session: AsyncSession, category: str) -> list[Tutorial]:
    query = select(Tutorial).order_by(Tutorial.category, Tutorial.created_at, Tutorial.id)
    if category:
        query = query.where(Tutorial.category == category)
    return list((await session.scalars(query)).all())


async def get_tutorial(session: AsyncSession, tutorial_id: uuid.UUID) -> Tutorial | None:
    return await session.get(Tutorial, tutorial_id)


async def get_drawing(
    session: AsyncSession, user_id: uuid.UUID, drawing_id: uuid.UUID, *, for_update: bool = False
) -> Drawing | None:
    query = select(Drawing).where(Drawing.id == drawing_id, Drawing.user_id == user_id)
    if for_update:
        query = query.with_for_update()
    return (await session.scalars(query)).one_or_none()


async def list_drawings(
    session: AsyncSession, user_id: uuid.UUID, after: tuple[dt.datetime, uuid.UUID] | None, limit: int
) -> list[Drawing]:
    query = select(Drawing).where(Drawing.user_id == user_id)
    if after is not None:
        query = query.where(tuple_(Drawing.created_at, Drawing.id) < after)
    query = query.order_by(Drawing.created_at.desc(), Drawing.id.desc()).limit(limit)
    return list((await session.scalars(query)).all())


async def edits_of(session: AsyncSession, drawing_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[DrawingEdit]]:
    if not drawing_ids:
        return {}
    rows = await session.scalars(
        select(DrawingEdit)
        .where(DrawingEdit.drawing_id.in_(drawing_ids))
        .order_by(DrawingEdit.drawing_id, DrawingEdit.version)
    )
    edits: dict[uuid.UUID, list[DrawingEdit]] = {}
    for edit in rows:
        edits.setdefault(edit.drawing_id, []).append(edit)
    return edits


async def story_counts(session: AsyncSession, drawing_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    if not drawing_ids:
        return {}
    rows = await session.execute(
        select(PictureStory.drawing_id, func.count())
        .where(PictureStory.drawing_id.in_(drawing_ids))
        .group_by(PictureStory.drawing_id)
    )
    return {drawing_id: count for drawing_id, count in rows.all()}


async def delete_drawing(session: AsyncSession, user_id: uuid.UUID, drawing_id: uuid.UUID) -> bool:
    deleted = await session.execute(
        delete(Drawing)
        .where(Drawing.id == drawing_id, Drawing.user_id == user_id)
        .returning(Drawing.id)
    )
    return deleted.scalar_one_or_none() is not None


async def next_edit_version(session: AsyncSession, drawing_id: uuid.UUID) -> int:
    latest = await session.scalar(
        select(func.max(DrawingEdit.version)).where(DrawingEdit.drawing_id == drawing_id)
    )
    return (latest or 0) + 1


async def get_picture_story(
    session: AsyncSession, user_id: uuid.UUID, story_id: uuid.UUID
) -> PictureStory | None:
    return (
        await session.scalars(
            select(PictureStory).where(PictureStory.id == story_id, PictureStory.user_id == user_id)
        )
    ).one_or_none()


async def list_picture_stories(
    session: AsyncSession,
    user_id: uuid.UUID,
    after: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
    *,
    favorite_only: bool,
    drawing_id: uuid.UUID | None,
) -> list[PictureStory]:
    query = select(PictureStory).where(PictureStory.user_id == user_id)
    if favorite_only:
        query = query.where(PictureStory.is_favorite.is_(True))
    if drawing_id is not None:
        query = query.where(PictureStory.drawing_id == drawing_id)
    if after is not None:
        query = query.where(tuple_(PictureStory.created_at, PictureStory.id) < after)
    query = query.order_by(PictureStory.created_at.desc(), PictureStory.id.desc()).limit(limit)
    return list((await session.scalars(query)).all())


async def set_favorite(
    session: AsyncSession, user_id: uuid.UUID, story_id: uuid.UUID, is_favorite: bool, now: dt.datetime
) -> PictureStory | None:
    return (
        await session.scalars(
            update(PictureStory)
            .where(PictureStory.id == story_id, PictureStory.user_id == user_id)
            .values(is_favorite=is_favorite, updated_at=now)
            .returning(PictureStory)
            .execution_options(synchronize_session=False)
        )
    ).one_or_none()


async def delete_picture_story(session: AsyncSession, user_id: uuid.UUID, story_id: uuid.UUID) -> bool:
    deleted = await session.execute(
        delete(PictureStory)
        .where(PictureStory.id == story_id, PictureStory.user_id == user_id)
        .returning(PictureStory.id)
    )
    return deleted.scalar_one_or_none() is not None


async def photo_deleted(session: AsyncSession, user_id: uuid.UUID, photo_id: str, now: dt.datetime) -> int:
    """Forget a photo media deleted: an edit made of it goes; a drawing whose
    upload it was keeps its edits and stories but has no image any more."""
    await session.execute(
        delete(DrawingEdit).where(
            DrawingEdit.photo_id == photo_id,
            DrawingEdit.drawing_id.in_(select(Drawing.id).where(Drawing.user_id == user_id)),
        )
    )
    marked = await session.execute(
        update(Drawing)
        .where(Drawing.user_id == user_id, Drawing.photo_id == photo_id)
        .values(photo_available=False, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return marked.rowcount or 0


async def delete_pictures_of(session: AsyncSession, user_id: uuid.UUID) -> int:
    """Every drawing of the user (their edits and stories go with them)."""
    deleted = await session.execute(delete(Drawing).where(Drawing.user_id == user_id))
    await session.execute(delete(PictureStory).where(PictureStory.user_id == user_id))
    return deleted.rowcount or 0

