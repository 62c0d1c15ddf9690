"""The path a story follows through its tree of segments.

A story's segments form a tree (each follows its parent; alternatives share a
parent). The story follows one path, from its opening to its head segment;
segments on it carry `on_path`, so every reader of the followed path (GetStory,
ListSegments, search, sharing, statistics, export) reads one index range and
never walks the tree. `follow` is the one writer of the head and `on_path`.
"""

from __future__ import annotations

import uuid

from sqlalchemy import and_, not_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_stories.stories.models import Segment, SegmentKind, Story


def path_to(segment_id: uuid.UUID):
    """A recursive CTE of the ids of `segment_id` and every segment above it."""
    up = select(Segment.id, Segment.parent_id).where(Segment.id == segment_id).cte(
        "path", recursive=True
    )
    parent = select(Segment.id, Segment.parent_id).join(up, Segment.id == up.c.parent_id)
    return up.union_all(parent)


async def newest_leaf_under(session: AsyncSession, segment_id: uuid.UUID) -> uuid.UUID:
    """The segment the story follows when it follows `segment_id`: going down
    by the newest child until a segment nothing follows (itself, if none)."""
    current = segment_id
    while True:
        child = (
            await session.execute(
                select(Segment.id)
                .where(Segment.parent_id == current)
                .order_by(Segment.created_at.desc(), Segment.id.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        if child is None:
            return current
        current = child


async def follow(session: AsyncSession, story: Story, head_id: uuid.UUID) -> None:
    """Make `story` (held FOR UPDATE by the caller) follow the path to
    `head_id`, a segment of the story: its head, its completeness (the path
    ends with an ending) and the segments' `on_path`. Segments leave the path
    before others join it, so the one-version-per-position index holds
    after each statement."""
    path = path_to(head_id)
    on_new_path = Segment.id.in_(select(path.c.id))
    await session.execute(
        update(Segment)
        .where(Segment.story_id == story.id, Segment.on_path, not_(on_new_path))
        .values(on_path=False)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(Segment)
        .where(and_(Segment.story_id == story.id, not_(Segment.on_path), on_new_path))
        .values(on_path=True)
        .execution_options(synchronize_session=False)
    )
    head_kind = (
        await session.execute(select(Segment.kind).where(Segment.id == head_id))
    ).scalar_one()
    story.head_segment_id = head_id
    story.is_complete = head_kind == SegmentKind.ending.value
