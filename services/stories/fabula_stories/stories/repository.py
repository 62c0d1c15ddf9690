"""All SQL of the stories service. Every query about a story names its owner,
so another user's story is simply not found."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import (
    DateTime,
    Row,
    String,
    Uuid,
    delete,
    func,
    literal,
    or_,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by, array_agg, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import selectinload

from fabula_stories.stories.models import PendingGeneration, Segment, Story


async def add(session: AsyncSession, *objects: Story | Segment | PendingGeneration) -> None:
    session.add_all(objects)
    await session.flush()


async def get_story(
    session: AsyncSession,
    user_id: uuid.UUID,
    story_id: uuid.UUID,
    *,
    with_segments: bool = False,
    for_update: bool = False,
) -> Story | None:
    query = select(Story).where(Story.id == story_id, Story.user_id == user_id)
    if with_segments:
        # populate_existing: the story may already sit in the session without
        # its segments (e.g. right after a segment was appended).
        query = query.options(selectinload(Story.segments)).execution_options(
            populate_existing=True
        )
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def get_story_with_segment_count(
    session: AsyncSession, user_id: uuid.UUID, story_id: uuid.UUID
) -> tuple[Story, int] | None:
    """The story and how many segments it has, without loading any segment
    (the count is an index-only scan of uq_segments_story_id_position)."""
    segment_count = (
        select(func.count()).where(Segment.story_id == Story.id).correlate(Story).scalar_subquery()
    )
    query = select(Story, segment_count).where(Story.id == story_id, Story.user_id == user_id)
    row = (await session.execute(query)).one_or_none()
    return None if row is None else (row[0], row[1])


_STORY_COLUMNS = (
    Story.id,
    Story.user_id,
    Story.title,
    Story.genre,
    Story.characters,
    Story.opening_line,
    Story.is_complete,
    Story.created_at,
    Story.updated_at,
)
_SEGMENT_COLUMNS = (
    Segment.id.label("segment_id"),
    Segment.position,
    Segment.kind,
    Segment.text,
    Segment.provider,
    Segment.model,
    Segment.is_language_model,
    Segment.created_at.label("segment_created_at"),
)
# The read path (GetStory) in Core: plain rows, no ORM objects, one statement.
_STORY_WITH_SEGMENTS = (
    select(*_STORY_COLUMNS, *_SEGMENT_COLUMNS)
    .select_from(Story)
    .outerjoin(Segment, Segment.story_id == Story.id)
    .order_by(Segment.position)
)
_STORY_WITH_SEGMENT_COUNT = select(
    *_STORY_COLUMNS,
    select(func.count())
    .where(Segment.story_id == Story.id)
    .correlate(Story)
    .scalar_subquery()
    .label("segment_count"),
)


async def read_story_rows(
    connection: AsyncConnection, user_id: uuid.UUID, story_id: uuid.UUID
) -> Sequence[Row]:
    """The user's story with its segments in one statement: a row per segment
    in story order, each carrying the story's columns (one row with NULL
    segment columns when it has none); no rows when the story is missing or
    someone else's."""
    query = _STORY_WITH_SEGMENTS.where(Story.id == story_id, Story.user_id == user_id)
    return (await connection.execute(query)).all()


async def read_story_summary_row(
    connection: AsyncConnection, user_id: uuid.UUID, story_id: uuid.UUID
) -> Row | None:
    """The user's story and its `segment_count`, in one statement; None when
    missing or someone else's."""
    query = _STORY_WITH_SEGMENT_COUNT.where(Story.id == story_id, Story.user_id == user_id)
    return (await connection.execute(query)).one_or_none()


async def story_exists(session: AsyncSession, user_id: uuid.UUID, story_id: uuid.UUID) -> bool:
    query = select(Story.id).where(Story.id == story_id, Story.user_id == user_id)
    return (await session.execute(query)).scalar_one_or_none() is not None


async def list_segments(
    session: AsyncSession,
    user_id: uuid.UUID,
    story_id: uuid.UUID,
    after_position: int,
    limit: int,
) -> list[Segment]:
    """Up to `limit` segments of the user's story after `after_position`, in
    story order: a range scan of uq_segments_story_id_position, so a page
    costs the same wherever it is in the story. Empty when the story is
    missing, someone else's or has no segments after that position."""
    query = (
        select(Segment)
        .join(Story, Story.id == Segment.story_id)
        .where(
            Segment.story_id == story_id,
            Story.user_id == user_id,
            Segment.position > after_position,
        )
        .order_by(Segment.position)
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())


@dataclass(frozen=True)
class ClaimedStory:
    """What claiming a story for writing returns: what the model needs of it."""

    id: uuid.UUID
    genre: str
    title: str
    characters: list[str]
    opening_line: str | None
    # The texts of its last segments, newest first.
    recent_texts: list[str]


async def claim_for_writing(
    session: AsyncSession,
    user_id: uuid.UUID,
    story_id: uuid.UUID,
    generation_id: uuid.UUID,
    lease: dt.timedelta,
    *,
    kind: str,
    claimed_until: dt.datetime,
    owner: str,
    recent: int,
) -> ClaimedStory | None:
    """Hold the user's open story for `lease` for the writer of `generation_id`
    unless another writer holds it, record the pending generation, and read
    the texts of its `recent` last segments. One statement (a single round
    trip, atomic even in autocommit), so of concurrent claims exactly one
    finds the row free. None when the story is missing, complete or held
    (then nothing is written)."""
    claimed = (
        update(Story)
        .where(
            Story.id == story_id,
            Story.user_id == user_id,
            Story.is_complete.is_(False),
            or_(Story.writing_until.is_(None), Story.writing_until < func.now()),
        )
        .values(writing_until=func.now() + lease, writing_generation_id=generation_id)
        .returning(Story.id, Story.genre, Story.title, Story.characters, Story.opening_line)
        .cte("claimed")
    )
    pending = (
        insert(PendingGeneration)
        .from_select(
            ["generation_id", "story_id", "user_id", "kind", "claimed_until", "owner"],
            select(
                literal(generation_id, Uuid),
                claimed.c.id,
                literal(user_id, Uuid),
                literal(kind, String),
                literal(claimed_until, DateTime(timezone=True)),
                literal(owner, String),
            ),
        )
        .returning(PendingGeneration.generation_id)
        .cte("pending")
    )
    last = (
        select(Segment.text, Segment.position)
        .where(Segment.story_id == story_id)
        .order_by(Segment.position.desc())
        .limit(recent)
        .subquery()
    )
    texts = select(array_agg(aggregate_order_by(last.c.text, last.c.position.desc())))
    query = select(
        claimed.c.id,
        claimed.c.genre,
        claimed.c.title,
        claimed.c.characters,
        claimed.c.opening_line,
        texts.scalar_subquery(),
    ).select_from(claimed.join(pending, true()))
    row = (await session.execute(query)).one_or_none()
    if row is None:
        return None
    story, genre, title, characters, opening_line, recent_texts = row
    return ClaimedStory(story, genre, title, list(characters), opening_line, recent_texts or [])


async def renew_claim(session: AsyncSession, generation_id: uuid.UUID, lease: dt.timedelta) -> bool:
    """Extend the claim of `generation_id` and its story's lease (if this
    writer still holds it) by `lease` from now; False when the claim is gone
    (the sweeper discarded it)."""
    story_id = (
        await session.execute(
            update(PendingGeneration)
            .where(PendingGeneration.generation_id == generation_id)
            .values(claimed_until=func.now() + lease)
            .returning(PendingGeneration.story_id)
            .execution_options(synchronize_session=False)
        )
    ).scalar_one_or_none()
    if story_id is None:
        return False
    await session.execute(
        update(Story)
        .where(Story.id == story_id, Story.writing_generation_id == generation_id)
        .values(writing_until=func.now() + lease)
        .execution_options(synchronize_session=False)
    )
    return True


async def take_pending(session: AsyncSession, generation_id: uuid.UUID) -> PendingGeneration | None:
    """Delete the claim of `generation_id` and return it; None when it is
    gone already. Storing and discarding both take the claim, so of the two
    exactly one finds it (the other waits on its row lock, then finds nothing)."""
    query = (
        delete(PendingGeneration)
        .where(PendingGeneration.generation_id == generation_id)
        .returning(PendingGeneration)
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def take_expired_pending(session: AsyncSession, limit: int) -> list[PendingGeneration]:
    """Delete up to `limit` claims whose lease ran out and return them. Claims
    another transaction holds (being stored right now) are skipped."""
    expired = (
        select(PendingGeneration.generation_id)
        .where(PendingGeneration.claimed_until < func.now())
        .order_by(PendingGeneration.claimed_until)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    query = (
        delete(PendingGeneration)
        .where(PendingGeneration.generation_id.in_(expired.scalar_subquery()))
        .returning(PendingGeneration)
        .execution_options(synchronize_session=False)
    )
    return list((await session.execute(query)).scalars())


async def take_owned_pending(
    session: AsyncSession, owner: str, created_before: dt.datetime, limit: int
) -> list[PendingGeneration]:
    """Delete up to `limit` claims `owner` made before `created_before` (its
    previous incarnation's, when it has just started again) and return them.
    Claims being stored right now are skipped, as by take_expired_pending."""
    owned = (
        select(PendingGeneration.generation_id)
        .where(PendingGeneration.owner == owner, PendingGeneration.created_at < created_before)
        .order_by(PendingGeneration.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    query = (
        delete(PendingGeneration)
        .where(PendingGeneration.generation_id.in_(owned.scalar_subquery()))
        .returning(PendingGeneration)
        .execution_options(synchronize_session=False)
    )
    return list((await session.execute(query)).scalars())


async def release_writing(session: AsyncSession, claims: Sequence[PendingGeneration]) -> None:
    """Free the stories the writers of `claims` still hold (after a lease
    expired another writer may hold the story: it keeps it). A generation id
    only ever holds its own claim's story, so matching either list is exact."""
    query = (
        update(Story)
        .where(
            Story.id.in_([claim.story_id for claim in claims]),
            Story.writing_generation_id.in_([claim.generation_id for claim in claims]),
        )
        .values(writing_until=None, writing_generation_id=None)
        .execution_options(synchronize_session=False)
    )
    await session.execute(query)


async def last_position(session: AsyncSession, story_id: uuid.UUID) -> int:
    """Position of the story's last segment; 0 when it has none."""
    query = select(func.coalesce(func.max(Segment.position), 0)).where(Segment.story_id == story_id)
    return (await session.execute(query)).scalar_one()


async def list_stories(
    session: AsyncSession,
    user_id: uuid.UUID,
    limit: int,
    after: tuple[dt.datetime, uuid.UUID] | None,
) -> Sequence[tuple[Story, int]]:
    """Up to `limit` of the user's stories with their segment counts, newest
    first, starting after the (created_at, id) key of the previous page."""
    segment_count = (
        select(func.count()).where(Segment.story_id == Story.id).correlate(Story).scalar_subquery()
    )
    query = (
        select(Story, segment_count)
        .where(Story.user_id == user_id)
        .order_by(Story.created_at.desc(), Story.id.desc())
        .limit(limit)
    )
    if after is not None:
        # A row comparison, so Postgres walks ix_stories_user_id_created_at_id.
        query = query.where(tuple_(Story.created_at, Story.id) < tuple_(*after))
    return [(story, count) for story, count in (await session.execute(query)).all()]


async def delete_story(session: AsyncSession, user_id: uuid.UUID, story_id: uuid.UUID) -> bool:
    """Delete the story (its segments go by ON DELETE CASCADE); False when absent."""
    query = delete(Story).where(Story.id == story_id, Story.user_id == user_id).returning(Story.id)
    return (await session.execute(query)).scalar_one_or_none() is not None
