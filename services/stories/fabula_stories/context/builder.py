"""What the model is given to write a story's next segment: built here, by one
component, within a token budget. Stories sends these facts to generation as
StoryInputs; generation owns the prompt text.

SKELETON (issue 11 base): recent path texts in a character budget, no lore.
The lore/context helper replaces the bodies; the signatures are the contract
the writer (writer.py) and GetContext use.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from fabula.generation.v1 import generation_pb2
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_stories.stories.models import Segment, Story
from fabula_stories.stories.paths import path_to


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
    lore: list[LoreHit] = field(default_factory=list)
    max_tokens: int = 0
    used_tokens: int = 0
    segments_omitted: int = 0
    lore_omitted: list[uuid.UUID] = field(default_factory=list)


def approximate_tokens(text: str) -> int:
    """About four characters a token (see docs/architecture.md)."""
    return (len(text) + 3) // 4


async def load_for_writing(
    session: AsyncSession,
    story: Story,
    after_segment_id: uuid.UUID | None,
    direction: str,
    *,
    max_segments: int,
    max_chars: int,
) -> BuiltContext:
    """The context for a segment that would follow `after_segment_id` on
    `story` (None: an opening, nothing before it)."""
    facts = StoryFacts(
        genre=story.genre,
        title=story.title,
        characters=list(story.characters),
        opening_line=story.opening_line or "",
        memory=story.memory,
        authors_note=story.authors_note,
    )
    path: list[PathText] = []
    if after_segment_id is not None:
        up = path_to(after_segment_id)
        rows = await session.execute(
            select(Segment.id, Segment.position, Segment.text)
            .where(Segment.id.in_(select(up.c.id)))
            .order_by(Segment.position.desc())
            .limit(max_segments)
        )
        path = [PathText(*row) for row in rows]
    return build_context(facts, path, direction, max_chars=max_chars)


def build_context(
    facts: StoryFacts,
    path_newest_first: Sequence[PathText],
    direction: str,
    *,
    max_chars: int,
) -> BuiltContext:
    pieces: list[ContextPiece] = []
    remaining = max_chars
    for segment in path_newest_first:
        if remaining <= 0:
            break
        text, truncated = segment.text, False
        if len(text) > remaining:
            if pieces:
                break
            text, truncated = text[-remaining:], True
        pieces.append(
            ContextPiece(segment.segment_id, segment.position, text, approximate_tokens(text), truncated)
        )
        remaining -= len(text)
    pieces.reverse()
    used = sum(piece.tokens for piece in pieces)
    return BuiltContext(
        facts=facts,
        segments=pieces,
        direction=direction,
        max_tokens=approximate_tokens("x" * max_chars),
        used_tokens=used,
        segments_omitted=max(0, len(path_newest_first) - len(pieces)),
    )


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
