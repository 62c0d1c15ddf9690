"""SQL of search, filters and statistics. Every query names the owner, so
only the user's own stories are ever found or counted."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import (
    REAL,
    ColumnElement,
    and_,
    bindparam,
    case,
    func,
    literal,
    literal_column,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_stories.stories.models import Segment, Story

# The text search configuration of both search_vector columns (0008_shaping):
# the query must be parsed with the same one.
_ENGLISH = literal_column("'english'::regconfig")
_WEIGHT_A = literal_column("'A'::\"char\"")
# ts_headline: the matched words between « and », at most two short fragments.
HEADLINE_OPTIONS = (
    "StartSel=«, StopSel=», MaxFragments=2, MaxWords=20, MinWords=8, FragmentDelimiter=\" … \""
)


@dataclass(frozen=True)
class Criteria:
    """What ListStories looks for: a websearch query (None: no search) and filters."""

    query: str | None
    genre: str | None
    is_complete: bool | None
    is_favorite: bool | None


@dataclass(frozen=True)
class Hit:
    rank: float
    snippet: str
    segment_id: uuid.UUID | None  # None: the snippet is of the title, genre and characters


@dataclass(frozen=True)
class FoundStory:
    story: Story
    segment_count: int  # on the followed path
    hit: Hit | None  # None outside a search


def _owned_and_filtered(user_id: uuid.UUID, found: Criteria) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [Story.user_id == user_id]
    if found.genre is not None:
        conditions.append(func.lower(Story.genre) == func.lower(found.genre))
    if found.is_complete is not None:
        conditions.append(Story.is_complete.is_(found.is_complete))
    if found.is_favorite is not None:
        conditions.append(Story.is_favorite.is_(found.is_favorite))
    return conditions


def _path_length() -> ColumnElement[int]:
    return (
        select(func.count())
        .where(Segment.story_id == Story.id, Segment.on_path)
        .correlate(Story)
        .scalar_subquery()
    )


async def filtered(
    session: AsyncSession,
    user_id: uuid.UUID,
    found: Criteria,
    limit: int,
    after: tuple[dt.datetime, uuid.UUID] | None,
) -> list[FoundStory]:
    """The user's stories passing the filters, newest first, after the
    (created_at, id) key of the previous page (ix_stories_user_id_created_at_id)."""
    query = (
        select(Story, _path_length())
        .where(*_owned_and_filtered(user_id, found))
        .order_by(Story.created_at.desc(), Story.id.desc())
        .limit(limit)
    )
    if after is not None:
        query = query.where(tuple_(Story.created_at, Story.id) < tuple_(*after))
    rows = (await session.execute(query)).all()
    return [FoundStory(story, count, None) for story, count in rows]


async def search(
    session: AsyncSession,
    user_id: uuid.UUID,
    found: Criteria,
    limit: int,
    after: tuple[float, uuid.UUID] | None,
) -> list[FoundStory]:
    """The user's stories matching the query, best first, after the (rank, id)
    key of the previous page.

    A story matches by its own search_vector (title, genre, characters) or by
    a segment of its followed path; its rank is the better of the two. The
    story's own words weigh as ts_rank's weight A (1.0) and segment text as
    weight D (0.1), Postgres' default weights: a title hit outranks the same
    word in the text. Both matches go through their GIN indexes (`@@`); the
    snippet (ts_headline, the costly part) is made only for the page's rows,
    from the text that gave the rank."""
    tsquery = func.websearch_to_tsquery(_ENGLISH, bindparam("query", found.query))
    mine = _owned_and_filtered(user_id, found)

    story_rank = func.ts_rank(func.setweight(Story.search_vector, _WEIGHT_A), tsquery)
    story_hits = (
        select(Story.id.label("story_id"), story_rank.label("rank"))
        .where(*mine, Story.search_vector.op("@@")(tsquery))
        .cte("story_hits")
    )
    segment_rank = func.ts_rank(Segment.search_vector, tsquery)
    # The best matching segment of each story's followed path.
    segment_hits = (
        select(Segment.story_id, Segment.id.label("segment_id"), segment_rank.label("rank"))
        .join(Story, Story.id == Segment.story_id)
        .where(*mine, Segment.on_path, Segment.search_vector.op("@@")(tsquery))
        .ext(distinct_on(Segment.story_id))
        .order_by(Segment.story_id, segment_rank.desc(), Segment.position)
        .cte("segment_hits")
    )
    segment_wins = and_(
        segment_hits.c.rank.is_not(None),
        or_(story_hits.c.rank.is_(None), segment_hits.c.rank > story_hits.c.rank),
    )
    hits = (
        select(
            func.coalesce(story_hits.c.story_id, segment_hits.c.story_id).label("story_id"),
            # greatest() skips NULLs: the rank of whichever matched.
            func.greatest(story_hits.c.rank, segment_hits.c.rank).label("rank"),
            case((segment_wins, segment_hits.c.segment_id)).label("segment_id"),
        )
        .select_from(
            story_hits.join(
                segment_hits, segment_hits.c.story_id == story_hits.c.story_id, full=True
            )
        )
        .subquery("hits")
    )
    page = select(hits).order_by(hits.c.rank.desc(), hits.c.story_id.desc()).limit(limit)
    if after is not None:
        after_rank, after_id = after
        page = page.where(
            tuple_(hits.c.rank, hits.c.story_id)
            < tuple_(bindparam("after_rank", after_rank, type_=REAL), after_id)
        )
    page = page.subquery("page")

    story_words = Story.title + " " + Story.genre + " " + func.stories.join_words(Story.characters)
    snippet = func.ts_headline(
        _ENGLISH,
        func.coalesce(Segment.text, story_words),
        tsquery,
        literal(HEADLINE_OPTIONS),
    )
    query = (
        select(Story, _path_length(), page.c.rank, page.c.segment_id, snippet)
        .join(page, page.c.story_id == Story.id)
        .outerjoin(Segment, Segment.id == page.c.segment_id)
        .order_by(page.c.rank.desc(), page.c.story_id.desc())
    )
    rows = (await session.execute(query)).all()
    return [
        FoundStory(story, count, Hit(rank=rank, snippet=text, segment_id=segment_id))
        for story, count, rank, segment_id, text in rows
    ]


# --- Statistics -------------------------------------------------------------------


@dataclass(frozen=True)
class GenreStatistics:
    genre: str
    total: int
    completed: int
    words: int


@dataclass(frozen=True)
class StoryStatistics:
    total: int
    completed: int
    favorites: int
    average_segments: float
    total_words: int
    genres: list[GenreStatistics]  # most stories first


async def statistics(session: AsyncSession, user_id: uuid.UUID) -> StoryStatistics:
    """One statement: each story's followed path summed up, then grouped by
    genre and in total (GROUPING SETS). Genres group case-insensitively, as the
    genre filter matches, under their most used spelling."""
    per_story = (
        select(
            Story.genre,
            Story.is_complete,
            Story.is_favorite,
            func.count(Segment.id).label("segments"),
            func.coalesce(func.sum(Segment.word_count), 0).label("words"),
        )
        .select_from(Story)
        .outerjoin(Segment, and_(Segment.story_id == Story.id, Segment.on_path))
        .where(Story.user_id == user_id)
        .group_by(Story.id)
        .subquery("per_story")
    )
    genre_key = func.lower(per_story.c.genre)
    query = select(
        func.grouping(genre_key).label("is_total"),
        func.mode().within_group(per_story.c.genre).label("genre"),
        func.count().label("total"),
        func.count().filter(per_story.c.is_complete).label("completed"),
        func.count().filter(per_story.c.is_favorite).label("favorites"),
        func.coalesce(func.sum(per_story.c.segments), 0).label("segments"),
        func.coalesce(func.sum(per_story.c.words), 0).label("words"),
    ).group_by(func.grouping_sets(genre_key, tuple_()))
    rows = (await session.execute(query)).all()
    [total] = [row for row in rows if row.is_total]
    genres = sorted(
        (
            GenreStatistics(row.genre, row.total, row.completed, int(row.words))
            for row in rows
            if not row.is_total
        ),
        key=lambda genre: (-genre.total, genre.genre.lower()),
    )
    return StoryStatistics(
        total=total.total,
        completed=total.completed,
        favorites=total.favorites,
        average_segments=int(total.segments) / total.total if total.total else 0.0,
        total_words=int(total.words),
        genres=genres,
    )
