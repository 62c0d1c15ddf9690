"""What the model is given to write a story's next segment: built here, by one
component, within a token budget. Stories sends these facts to generation as
StoryInputs; generation owns the prompt text.

Tokens are approximate: ceil(characters / 4), about what English text costs
with common tokenizers; good enough to keep a prompt within a model's context
without a tokenizer per model (see docs/architecture.md, "Memory, lore and the
model's context").

What goes in, and in what order it is counted against `max_tokens`:
1. memory, the author's note and the direction: always, whole (each has its own
   length limit), counted first;
2. lore: constant entries first, then entries a key of which appears in the
   recent story, each group by priority (highest first) then oldest first,
   within the lore share of the budget; entries that do not fit are listed in
   `lore_omitted`;
3. the followed path's segments, newest first, until the budget is used (the
   newest one's end is kept when it alone is too long). The story itself
   always gets at least an eighth of the budget, so a long memory cannot
   leave the model without it.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from fabula.generation.v1 import generation_pb2
from fabula_common.db import CompiledQuery, driver_of
from fabula_common.errors import NotFound
from sqlalchemy import Uuid, bindparam, func, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from fabula_stories.stories.models import LoreEntry, SecondaryLogic, Segment, Story
from fabula_stories.stories.paths import path_to

DEFAULT_MAX_TOKENS = 2048
DEFAULT_LORE_SHARE = 0.25
DEFAULT_LORE_SCAN_SEGMENTS = 4
# The story's own text keeps at least this part of the budget.
_STORY_FLOOR_SHARE = 8
# A cut segment starts at a word when one starts this close to the cut.
_WORD_START_SEARCH = 40
_SUBJECT_KIND = "story"


@dataclass(frozen=True)
class ContextLimits:
    """The token budget of a context (see settings: context_max_tokens,
    lore_budget_share, lore_scan_segments)."""

    max_tokens: int = DEFAULT_MAX_TOKENS
    # At most this part of max_tokens goes to lore.
    lore_share: float = DEFAULT_LORE_SHARE
    # How many of the most recent path segments are searched for lore keys.
    lore_scan_segments: int = DEFAULT_LORE_SCAN_SEGMENTS

    @classmethod
    def from_settings(cls, settings) -> ContextLimits:
        return cls(
            max_tokens=settings.context_max_tokens,
            lore_share=settings.lore_budget_share,
            lore_scan_segments=settings.lore_scan_segments,
        )


DEFAULT_LIMITS = ContextLimits()


@dataclass(frozen=True)
class StoryFacts:
    genre: str
    title: str
    characters: list[str]
    opening_line: str
    memory: str = ""
    authors_note: str = ""


@dataclass(frozen=True)
class PathText:
    """A segment of the path the next segment would follow."""

    segment_id: uuid.UUID
    position: int
    text: str


@dataclass(frozen=True)
class ContextPiece:
    """A segment as the context holds it (its start may be cut)."""

    segment_id: uuid.UUID
    position: int
    text: str
    tokens: int
    truncated: bool = False


@dataclass(frozen=True)
class LoreCandidate:
    """A lore entry as the builder weighs it."""

    id: uuid.UUID
    text: str
    keys: tuple[str, ...] = ()
    secondary_keys: tuple[str, ...] = ()
    secondary_logic: str = SecondaryLogic.and_any.value
    priority: int = 0
    constant: bool = False
    enabled: bool = True
    created_at: dt.datetime = dt.datetime.min.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class LoreHit:
    entry_id: uuid.UUID
    text: str
    tokens: int
    matched: str  # "constant" or the key that matched


@dataclass(frozen=True)
class BuiltContext:
    facts: StoryFacts
    segments: list[ContextPiece]  # oldest first
    direction: str = ""
    lore: list[LoreHit] = field(default_factory=list)  # in the order they are sent
    max_tokens: int = 0
    used_tokens: int = 0
    segments_omitted: int = 0
    lore_omitted: list[uuid.UUID] = field(default_factory=list)


def approximate_tokens(text: str) -> int:
    """About four characters a token: ceil(len / 4) (see docs/architecture.md)."""
    return (len(text) + 3) // 4


# --- Lore matching ---------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def key_pattern(key: str) -> re.Pattern[str]:
    """A key as a whole word or phrase, case-insensitively: no letter, digit
    or underscore (in any script) right before or after it; the words of a
    phrase may be separated by any whitespace."""
    body = r"\s+".join(re.escape(word) for word in key.split())
    return re.compile(rf"(?<!\w){body}(?!\w)", re.IGNORECASE)


def mentions(text: str, key: str) -> bool:
    return bool(key.strip()) and key_pattern(key.strip()).search(text) is not None


def lore_match(entry: LoreCandidate, scanned: str) -> str | None:
    """Why the entry belongs in the context ("constant" or the key that
    matched), or None when it does not."""
    if not entry.enabled:
        return None
    if entry.constant:
        return "constant"
    matched = next((key for key in entry.keys if mentions(scanned, key)), None)
    if matched is None:
        return None
    if entry.secondary_keys:
        found = [mentions(scanned, key) for key in entry.secondary_keys]
        logic = entry.secondary_logic
        if logic == SecondaryLogic.and_all.value:
            passes = all(found)
        elif logic == SecondaryLogic.not_any.value:
            passes = not any(found)
        else:
            passes = any(found)
        if not passes:
            return None
    return matched


def _lore_order(entry: LoreCandidate) -> tuple:
    return (not entry.constant, -entry.priority, entry.created_at, entry.id)


# --- Building --------------------------------------------------------------------


def _writing_query() -> CompiledQuery:
    """Everything load_for_writing reads, in one statement: the user's story's
    facts, its enabled lore entries (JSON), whether the segment to follow is on
    the followed path, and if so the newest `path_limit` segments of that path
    up to it (JSON). No row when the story is missing or someone else's."""
    story_id, path_limit = bindparam("story_id", type_=Uuid), bindparam("path_limit")
    followed = aliased(Segment)  # the segment to follow
    after = followed.id == bindparam("after_segment_id", type_=Uuid), followed.story_id == story_id
    after_position = select(followed.position).where(*after).scalar_subquery()
    lore = (
        select(
            func.json_agg(
                func.json_build_object(
                    *("id", LoreEntry.id, "text", LoreEntry.text, "keys", LoreEntry.keys),
                    *("secondary_keys", LoreEntry.secondary_keys),
                    *("secondary_logic", LoreEntry.secondary_logic),
                    *("priority", LoreEntry.priority, "constant", LoreEntry.constant),
                    *("enabled", LoreEntry.enabled, "created_at", LoreEntry.created_at),
                )
            )
        )
        .where(LoreEntry.story_id == Story.id, LoreEntry.enabled)
        .scalar_subquery()
    )
    # The followed path is one index range: no walk up the tree.
    recent = (
        select(Segment.id, Segment.position, Segment.text)
        .where(Segment.story_id == story_id, Segment.on_path, Segment.position <= after_position)
        .order_by(Segment.position.desc())
        .limit(path_limit)
        .subquery()
    )
    path = (
        select(
            func.json_agg(
                aggregate_order_by(
                    func.json_build_array(recent.c.id, recent.c.position, recent.c.text),
                    recent.c.position.desc(),
                )
            )
        )
        .select_from(recent)
        .scalar_subquery()
    )
    on_path = select(followed.on_path).where(*after).scalar_subquery()
    return CompiledQuery.of(
        select(
            *(Story.genre, Story.title, Story.characters, Story.opening_line),
            *(Story.memory, Story.authors_note),
            lore.label("lore"),
            on_path.label("after_on_path"),
            path.label("path"),
        ).where(Story.id == story_id, Story.user_id == bindparam("user_id", type_=Uuid))
    )


# Compiled once: the context is read before every model call of a story.
_FOR_WRITING = _writing_query()


async def load_for_writing(
    session: AsyncSession,
    user_id: uuid.UUID,
    story_id: uuid.UUID,
    after_segment_id: uuid.UUID | None,
    direction: str,
    *,
    max_segments: int,
    max_chars: int,
    limits: ContextLimits = DEFAULT_LIMITS,
) -> BuiltContext:
    """The context for a segment that would follow `after_segment_id` on the
    user's story (None: an opening, nothing before it); NotFound when the
    story is missing or someone else's. One round trip when that segment is
    on the followed path (every continuation of the head), two otherwise."""
    path_limit = max(max_segments, limits.lore_scan_segments)
    driver = await driver_of(session)
    row = await driver.fetchrow(
        _FOR_WRITING.sql,
        *_FOR_WRITING.arguments(
            {
                "story_id": story_id,
                "user_id": user_id,
                "after_segment_id": after_segment_id,
                "path_limit": path_limit,
            }
        ),
    )
    if row is None:
        raise NotFound("story not found")
    facts = StoryFacts(
        genre=row["genre"],
        title=row["title"],
        characters=list(row["characters"]),
        opening_line=row["opening_line"] or "",
        memory=row["memory"],
        authors_note=row["authors_note"],
    )
    path: list[PathText] = []
    if row["after_on_path"]:
        path = [
            PathText(uuid.UUID(id_), position, text) for id_, position, text in row["path"] or ()
        ]
    elif after_segment_id is not None and row["after_on_path"] is not None:
        path = await _recent_path_off_the_followed_one(
            session, story_id, after_segment_id, path_limit
        )
    # JSON arrives decoded: SQLAlchemy's dialect sets the pool's json codec.
    lore = [_lore_candidate(entry) for entry in row["lore"] or ()]
    return build_context(
        facts,
        path,
        direction,
        max_chars=max_chars,
        max_segments=max_segments,
        lore=lore,
        limits=limits,
    )


def _lore_candidate(entry: dict) -> LoreCandidate:
    return LoreCandidate(
        id=uuid.UUID(entry["id"]),
        text=entry["text"],
        keys=tuple(entry["keys"] or ()),
        secondary_keys=tuple(entry["secondary_keys"] or ()),
        secondary_logic=entry["secondary_logic"],
        priority=entry["priority"],
        constant=entry["constant"],
        enabled=entry["enabled"],
        created_at=dt.datetime.fromisoformat(entry["created_at"]),
    )


async def _recent_path_off_the_followed_one(
    session: AsyncSession, story_id: uuid.UUID, after_segment_id: uuid.UUID, limit: int
) -> list[PathText]:
    """Up to `limit` segments of the path ending at `after_segment_id`, a
    segment off the followed path (a branch or a regeneration of one), newest
    first: walked up the tree."""
    up = path_to(after_segment_id)
    query = (
        select(Segment.id, Segment.position, Segment.text)
        .where(Segment.id.in_(select(up.c.id)))
        .order_by(Segment.position.desc())
        .limit(limit)
    )
    return [PathText(*row) for row in await session.execute(query)]


def build_context(
    facts: StoryFacts,
    path_newest_first: Sequence[PathText],
    direction: str,
    *,
    max_chars: int,
    max_segments: int | None = None,
    lore: Sequence[LoreCandidate] = (),
    limits: ContextLimits = DEFAULT_LIMITS,
) -> BuiltContext:
    """The context from the story's facts, the path it would follow (newest
    first; at least `limits.lore_scan_segments` of it for the lore keys to be
    found) and its lore entries. `max_chars` and `max_segments` further cap
    the segment text kept (context_max_chars, context_segments)."""
    max_tokens = limits.max_tokens
    fixed = sum(map(approximate_tokens, (facts.memory, facts.authors_note, direction)))
    available = max_tokens - fixed
    story_floor = max_tokens // _STORY_FLOOR_SHARE if path_newest_first else 0

    # Lore: what the recent story (and the direction) mention.
    scanned = "\n".join(
        [segment.text for segment in path_newest_first[: limits.lore_scan_segments]] + [direction]
    )
    lore_budget = max(0, min(int(max_tokens * limits.lore_share), available - story_floor))
    hits: list[LoreHit] = []
    omitted: list[uuid.UUID] = []
    lore_used = 0
    for entry in sorted(lore, key=_lore_order):
        matched = lore_match(entry, scanned)
        if matched is None:
            continue
        tokens = approximate_tokens(entry.text)
        # A smaller entry further down may still fit where a larger one did not.
        if lore_used + tokens > lore_budget:
            omitted.append(entry.id)
            continue
        hits.append(LoreHit(entry.id, entry.text, tokens, matched))
        lore_used += tokens

    # The story itself, newest first.
    remaining_tokens = max(available - lore_used, story_floor)
    remaining_chars = max_chars
    pieces: list[ContextPiece] = []
    for segment in path_newest_first:
        if max_segments is not None and len(pieces) >= max_segments:
            break
        text, truncated = segment.text, False
        if approximate_tokens(text) > remaining_tokens or len(text) > remaining_chars:
            if pieces:
                break
            text, truncated = _tail(text, min(remaining_tokens * 4, remaining_chars)), True
            if not text:
                break
        tokens = approximate_tokens(text)
        pieces.append(ContextPiece(segment.segment_id, segment.position, text, tokens, truncated))
        remaining_tokens -= tokens
        remaining_chars -= len(text)
    pieces.reverse()
    # Positions on a path run 1, 2, 3, ...: all before the oldest kept are left out.
    if pieces:
        segments_omitted = pieces[0].position - 1
    else:
        segments_omitted = path_newest_first[0].position if path_newest_first else 0
    return BuiltContext(
        facts=facts,
        segments=pieces,
        direction=direction,
        lore=hits,
        max_tokens=max_tokens,
        used_tokens=fixed + lore_used + sum(piece.tokens for piece in pieces),
        segments_omitted=segments_omitted,
        lore_omitted=omitted,
    )


def _tail(text: str, max_chars: int) -> str:
    """The end of `text` in at most `max_chars`, starting at a word when one
    starts near the cut."""
    if max_chars <= 0:
        return ""
    if max_chars >= len(text):
        return text
    tail = text[-max_chars:]
    if not text[-max_chars - 1 : -max_chars].isspace():
        space = next(
            (i for i, char in enumerate(tail[:_WORD_START_SEARCH]) if char.isspace()), None
        )
        if space is not None:
            tail = tail[space:]
    return tail.lstrip()


def story_inputs(built: BuiltContext) -> generation_pb2.StoryInputs:
    return generation_pb2.StoryInputs(
        genre=built.facts.genre,
        title=built.facts.title,
        characters=built.facts.characters,
        opening_line=built.facts.opening_line,
        previous_segments=[piece.text for piece in built.segments],
        memory=built.facts.memory,
        authors_note=built.facts.authors_note,
        lore=[hit.text for hit in built.lore],
    )


def generate_request(
    built: BuiltContext,
    *,
    user_id: uuid.UUID,
    story_id: uuid.UUID,
    purpose: generation_pb2.Purpose = generation_pb2.PURPOSE_STORY_CONTINUATION,
    generation_id: uuid.UUID | None = None,
) -> generation_pb2.GenerateRequest:
    """The request the writer sends generation for the built context (and
    GetContext renders): one place, so what is shown is what is sent."""
    return generation_pb2.GenerateRequest(
        user_id=str(user_id),
        purpose=purpose,
        subject=generation_pb2.SubjectRef(kind=_SUBJECT_KIND, id=str(story_id)),
        story=story_inputs(built),
        direction=built.direction,
        generation_id=str(generation_id) if generation_id is not None else "",
        delivery=generation_pb2.DELIVERY_CONFIRMED_BY_OWNER,
    )
