"""All SQL of the stories service. Every query about a story names its owner,
so another user's story is simply not found."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from fabula_common.db import CompiledQuery, driver_of, utcnow
from sqlalchemy import (
    Boolean,
    DateTime,
    Interval,
    String,
    Uuid,
    and_,
    bindparam,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, selectinload

from fabula_stories.stories.models import (
    PendingGeneration,
    Segment,
    SegmentKind,
    SegmentRevision,
    Story,
)


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
        # Its followed path only. populate_existing: the story may already sit
        # in the session without its segments (e.g. right after a segment was
        # appended).
        query = query.options(
            selectinload(Story.segments.and_(Segment.on_path))
        ).execution_options(
            populate_existing=True
        )
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def get_story_with_segment_count(
    session: AsyncSession, user_id: uuid.UUID, story_id: uuid.UUID
) -> tuple[Story, int] | None:
    """The story and how many segments its followed path has, without loading
    any segment (the count is a scan of uq_segments_story_id_position_on_path)."""
    query = select(Story, _PATH_LENGTH).where(Story.id == story_id, Story.user_id == user_id)
    row = (await session.execute(query)).one_or_none()
    return None if row is None else (row[0], row[1])


# How many segments a story's followed path has (correlated with Story).
_PATH_LENGTH = (
    select(func.count())
    .where(Segment.story_id == Story.id, Segment.on_path)
    .correlate(Story)
    .scalar_subquery()
)
# A segment's alternatives: the segments of its story with the same parent
# (IS NOT DISTINCT FROM, written so Postgres can use ix_segments_parent_id, or
# the story's index for openings).
_sibling = aliased(Segment, name="sibling")
_SIBLINGS = or_(
    _sibling.parent_id == Segment.parent_id,
    and_(
        Segment.parent_id.is_(None),
        _sibling.parent_id.is_(None),
        _sibling.story_id == Segment.story_id,
    ),
)
ALTERNATIVE_COUNT = (
    select(func.count()).where(_SIBLINGS).correlate(Segment).scalar_subquery()
).label("alternative_count")
# Which of them it is, from 1, oldest first.
ALTERNATIVE_NUMBER = (
    select(func.count())
    .where(
        _SIBLINGS,
        tuple_(_sibling.created_at, _sibling.id) <= tuple_(Segment.created_at, Segment.id),
    )
    .correlate(Segment)
    .scalar_subquery()
).label("alternative_number")

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
    Story.memory,
    Story.authors_note,
    Story.is_favorite,
    Story.head_segment_id,
)
# A segment as every read answers it (see servicer.segment_row_to_proto).
SEGMENT_COLUMNS = (
    Segment.id.label("segment_id"),
    Segment.position,
    Segment.kind,
    Segment.text,
    Segment.provider,
    Segment.model,
    Segment.is_language_model,
    Segment.created_at.label("segment_created_at"),
    Segment.parent_id,
    Segment.word_count,
    Segment.edited_at,
    Segment.on_path,
    ALTERNATIVE_COUNT,
    ALTERNATIVE_NUMBER,
)
# The read path (GetStory): one statement each, written in Core from the
# models and compiled once; run by Database.fetch straight on the driver (no
# per-read statement building, caching, ORM objects or result wrapping).
_OWNED_STORY = (Story.id == bindparam("story_id"), Story.user_id == bindparam("user_id"))
STORY_WITH_SEGMENTS = CompiledQuery.of(
    select(*_STORY_COLUMNS, *SEGMENT_COLUMNS)
    .select_from(Story)
    .outerjoin(Segment, and_(Segment.story_id == Story.id, Segment.on_path))
    .where(*_OWNED_STORY)
    .order_by(Segment.position)
)
"""The user's story with its followed path: a row per segment in story order, each
carrying the story's columns (one row with NULL segment columns when it has
none); no rows when the story is missing or someone else's."""
STORY_WITH_SEGMENT_COUNT = CompiledQuery.of(
    select(*_STORY_COLUMNS, _PATH_LENGTH.label("segment_count")).where(*_OWNED_STORY)
)
"""The user's story and its `segment_count` (followed path); no row when
missing or someone else's."""
SEGMENT_OF_USER = CompiledQuery.of(
    select(*SEGMENT_COLUMNS)
    .join(Story, Story.id == Segment.story_id)
    .where(Segment.id == bindparam("segment_id"), Story.user_id == bindparam("user_id"))
)
"""One segment of a story of the user's; no row when missing or someone else's."""


async def story_exists(session: AsyncSession, user_id: uuid.UUID, story_id: uuid.UUID) -> bool:
    query = select(Story.id).where(Story.id == story_id, Story.user_id == user_id)
    return (await session.execute(query)).scalar_one_or_none() is not None


async def list_segments(
    session: AsyncSession,
    user_id: uuid.UUID,
    story_id: uuid.UUID,
    after_position: int,
    limit: int,
) -> list[Row]:
    """Up to `limit` segments of the user's story's followed path after
    `after_position`, in story order (SEGMENT_COLUMNS): a range scan of
    uq_segments_story_id_position_on_path, so a page costs the same wherever
    it is in the story. Empty when the story is missing, someone else's or
    has no segments after that position."""
    query = (
        select(*SEGMENT_COLUMNS)
        .join(Story, Story.id == Segment.story_id)
        .where(
            Segment.story_id == story_id,
            Story.user_id == user_id,
            Segment.on_path,
            Segment.position > after_position,
        )
        .order_by(Segment.position)
        .limit(limit)
    )
    return list((await session.execute(query)).all())


@dataclass(frozen=True)
class ClaimedStory:
    """What claiming a story for writing returns: where the segment goes."""

    id: uuid.UUID
    # The segment it will follow (None: an opening) and its kind.
    parent_id: uuid.UUID | None
    kind: str


def _claim_query(target: str) -> CompiledQuery:
    """The claim statement for a segment after the head (`target` "head"),
    after a given segment ("after": a branch) or in place of one
    ("regenerate"); its parameters are claim_for_writing's, by name."""
    story_id, target_id = bindparam("story_id", type_=Uuid), bindparam("target_id", type_=Uuid)
    kind = bindparam("kind", type_=String)
    of_target = (Segment.id == target_id, Segment.story_id == story_id)
    if target == "regenerate":
        may_write = exists().where(*of_target)
        parent = select(Segment.parent_id).where(*of_target).scalar_subquery()
        kind = select(Segment.kind).where(*of_target).scalar_subquery()
    elif target == "after":
        may_write = exists().where(*of_target, Segment.kind != SegmentKind.ending.value)
        parent = target_id
    else:
        may_write, parent = Story.is_complete.is_(False), None
    claimed = (
        update(Story)
        .where(
            Story.id == story_id,
            Story.user_id == bindparam("user_id", type_=Uuid),
            may_write,
            or_(Story.writing_until.is_(None), Story.writing_until < func.now()),
        )
        .values(
            writing_until=func.now() + bindparam("lease", type_=Interval),
            writing_generation_id=bindparam("generation_id", type_=Uuid),
        )
        .returning(Story.id, Story.head_segment_id)
        .cte("claimed")
    )
    columns = {
        "generation_id": bindparam("generation_id", type_=Uuid),
        "story_id": claimed.c.id,
        "user_id": bindparam("user_id", type_=Uuid),
        "kind": kind,
        "claimed_until": bindparam("claimed_until", type_=DateTime(timezone=True)),
        "owner": bindparam("owner", type_=String),
        "parent_id": claimed.c.head_segment_id if parent is None else parent,
        "regenerates": literal(target == "regenerate", Boolean),
        # As the model's default would (listed: from_select leaves it NULL).
        "created_at": bindparam("created_at", type_=DateTime(timezone=True)),
    }
    pending = (
        insert(PendingGeneration)
        .from_select(list(columns), select(*columns.values()))
        .returning(PendingGeneration.story_id, PendingGeneration.parent_id, PendingGeneration.kind)
        .cte("pending")
    )
    return CompiledQuery.of(select(pending))


# Compiled once: a claim precedes every model call, so its statement is not
# built, cached and compiled again per request.
_CLAIM = {target: _claim_query(target) for target in ("head", "after", "regenerate")}


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
    after_segment_id: uuid.UUID | None = None,
    regenerates_segment_id: uuid.UUID | None = None,
) -> ClaimedStory | None:
    """Hold the user's story for `lease` for the writer of `generation_id`
    unless another writer holds it, and record the pending generation with
    where its segment goes: after the head (the head at claim time; not when
    the story is complete), after `after_segment_id` (a segment of the story,
    not an ending: a branch), or, to regenerate `regenerates_segment_id`, after
    that segment's parent with its kind. One statement (a single round trip,
    atomic even in autocommit), so of concurrent claims exactly one finds the
    row free. None when the story is missing, held, or cannot take the
    segment there (then nothing is written)."""
    if regenerates_segment_id is not None:
        query = _CLAIM["regenerate"]
    else:
        query = _CLAIM["head" if after_segment_id is None else "after"]
    driver = await driver_of(session)
    row = await driver.fetchrow(
        query.sql,
        *query.arguments(
            {
                "story_id": story_id,
                "user_id": user_id,
                "target_id": regenerates_segment_id or after_segment_id,
                "generation_id": generation_id,
                "lease": lease,
                "kind": kind,
                "claimed_until": claimed_until,
                "owner": owner,
                "created_at": utcnow(),
            }
        ),
    )
    return None if row is None else ClaimedStory(*row)


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


async def list_stories(
    session: AsyncSession,
    user_id: uuid.UUID,
    limit: int,
    after: tuple[dt.datetime, uuid.UUID] | None,
) -> Sequence[tuple[Story, int]]:
    """Up to `limit` of the user's stories with their followed paths' lengths, newest
    first, starting after the (created_at, id) key of the previous page."""
    query = (
        select(Story, _PATH_LENGTH)
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


# --- Shaping: alternatives, revisions, branches --------------------------------


async def lock_story(
    session: AsyncSession, user_id: uuid.UUID, story_id: uuid.UUID
) -> tuple[Story, bool] | None:
    """The user's story locked FOR UPDATE until the transaction ends, and
    whether a writer holds its lease now (by the database's clock). A writer
    claims the story with an UPDATE of the same row, so of the two exactly one
    goes first and the other sees what it did."""
    busy = func.coalesce(Story.writing_until > func.now(), False).label("busy")
    query = (
        select(Story, busy)
        .where(Story.id == story_id, Story.user_id == user_id)
        .with_for_update(of=Story)
        .execution_options(populate_existing=True)
    )
    row = (await session.execute(query)).one_or_none()
    return None if row is None else (row[0], row[1])


async def get_segment(
    session: AsyncSession, story_id: uuid.UUID, segment_id: uuid.UUID
) -> Segment | None:
    """The segment if it belongs to the story."""
    query = select(Segment).where(Segment.id == segment_id, Segment.story_id == story_id)
    return (await session.execute(query)).scalar_one_or_none()


async def has_children(session: AsyncSession, segment_id: uuid.UUID) -> bool:
    query = select(exists().where(Segment.parent_id == segment_id))
    return (await session.execute(query)).scalar_one()


async def alternatives(session: AsyncSession, segment: Segment) -> list[Row]:
    """`segment` and its siblings (SEGMENT_COLUMNS), oldest first."""
    query = (
        select(*SEGMENT_COLUMNS)
        .where(
            Segment.story_id == segment.story_id,
            Segment.parent_id.is_not_distinct_from(segment.parent_id),
        )
        .order_by(Segment.created_at, Segment.id)
    )
    return list((await session.execute(query)).all())


async def next_revision_number(session: AsyncSession, segment_id: uuid.UUID) -> int:
    query = select(func.coalesce(func.max(SegmentRevision.number), 0) + 1).where(
        SegmentRevision.segment_id == segment_id
    )
    return (await session.execute(query)).scalar_one()


async def revisions(session: AsyncSession, segment_id: uuid.UUID) -> list[SegmentRevision]:
    """The segment's revisions, newest first."""
    query = (
        select(SegmentRevision)
        .where(SegmentRevision.segment_id == segment_id)
        .order_by(SegmentRevision.number.desc())
    )
    return list((await session.execute(query)).scalars())


async def get_revision(
    session: AsyncSession, segment_id: uuid.UUID, revision_id: uuid.UUID
) -> SegmentRevision | None:
    query = select(SegmentRevision).where(
        SegmentRevision.id == revision_id, SegmentRevision.segment_id == segment_id
    )
    return (await session.execute(query)).scalar_one_or_none()


# How much of a leaf's text a branch shows.
BRANCH_PREVIEW_CHARS = 120


async def tree(session: AsyncSession, story_id: uuid.UUID) -> list[Row]:
    """Every segment of the story without its text (but a preview): id,
    parent_id, position, kind, on_path, created_at, preview."""
    query = select(
        Segment.id,
        Segment.parent_id,
        Segment.position,
        Segment.kind,
        Segment.on_path,
        Segment.created_at,
        func.left(Segment.text, BRANCH_PREVIEW_CHARS).label("preview"),
    ).where(Segment.story_id == story_id)
    return list((await session.execute(query)).all())
