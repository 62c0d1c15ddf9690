"""SQL of share links."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import and_, delete, func, literal, null, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_stories.stories.models import Segment, Story, StoryShare


async def replace_share(
    session: AsyncSession, user_id: uuid.UUID, story_id: uuid.UUID, token_sha256: str
) -> dt.datetime | None:
    """Give the user's story a share with this token hash, replacing any it
    had (the old link stops working; the new one's views count from 0). Its
    creation time; None when the story is not the user's."""
    owned = select(
        Story.id, literal(token_sha256), literal(0), func.now(), null()
    ).where(Story.id == story_id, Story.user_id == user_id)
    insert_share = insert(StoryShare).from_select(
        ["story_id", "token_sha256", "view_count", "created_at", "last_viewed_at"], owned
    )
    query = insert_share.on_conflict_do_update(
        index_elements=[StoryShare.story_id],
        set_={
            "token_sha256": insert_share.excluded.token_sha256,
            "view_count": 0,
            "created_at": insert_share.excluded.created_at,
            "last_viewed_at": None,
        },
    ).returning(StoryShare.created_at)
    return (await session.execute(query)).scalar_one_or_none()


async def delete_share(session: AsyncSession, user_id: uuid.UUID, story_id: uuid.UUID) -> bool:
    query = (
        delete(StoryShare)
        .where(
            StoryShare.story_id == story_id,
            StoryShare.story_id == Story.id,
            Story.user_id == user_id,
        )
        .returning(StoryShare.story_id)
    )
    return (await session.execute(query)).scalar_one_or_none() is not None


@dataclass(frozen=True)
class SharedSegment:
    position: int
    kind: str  # a SegmentKind value
    text: str


@dataclass(frozen=True)
class SharedStory:
    """What a share link shows: nothing about the owner, no ids."""

    title: str
    genre: str
    characters: list[str]
    is_complete: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    view_count: int  # including this view
    segments: list[SharedSegment]


async def view_shared(session: AsyncSession, token_sha256: str) -> SharedStory | None:
    """Count a view of the share with this token hash and read its story's
    followed path: one statement (the UPDATE ... RETURNING is a CTE), so a
    view is counted exactly when the story is shown. None: no such share."""
    viewed = (
        update(StoryShare)
        .where(StoryShare.token_sha256 == token_sha256)
        .values(view_count=StoryShare.view_count + 1, last_viewed_at=func.now())
        .returning(StoryShare.story_id, StoryShare.view_count)
        .cte("viewed")
    )
    query = (
        select(
            Story.title,
            Story.genre,
            Story.characters,
            Story.is_complete,
            Story.created_at,
            Story.updated_at,
            viewed.c.view_count,
            Segment.position,
            Segment.kind,
            Segment.text,
        )
        .select_from(viewed)
        .join(Story, Story.id == viewed.c.story_id)
        .outerjoin(Segment, and_(Segment.story_id == Story.id, Segment.on_path))
        .order_by(Segment.position)
    )
    rows = (await session.execute(query)).all()
    if not rows:
        return None
    first = rows[0]
    return SharedStory(
        title=first.title,
        genre=first.genre,
        characters=list(first.characters),
        is_complete=first.is_complete,
        created_at=first.created_at,
        updated_at=first.updated_at,
        view_count=first.view_count,
        segments=[
            SharedSegment(row.position, row.kind, row.text)
            for row in rows
            if row.position is not None
        ],
    )
