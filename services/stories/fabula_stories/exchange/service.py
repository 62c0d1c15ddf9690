"""Export of a story's followed path, and import of stories written elsewhere
(the AI Story Generator's saved stories) as single-path stories."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from fabula_common.db import Database, utcnow
from fabula_common.errors import InvalidArgument, NotFound
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_stories.exchange import repository
from fabula_stories.exchange.formats import ExportDocument, ExportFile, Format, Section, render
from fabula_stories.leaving.service import refuse_deleted_user
from fabula_stories.stories.models import (
    GENRE_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    RevisionSource,
    SegmentKind,
    Story,
)
from fabula_stories.stories.service import (
    CHARACTER_MAX_LENGTH,
    MAX_CHARACTERS,
    OPENING_LINE_MAX_LENGTH,
)

AUTHOR_NAME_MAX_LENGTH = 200
MAX_SEGMENTS = 1000
SEGMENT_MAX_LENGTH = 20_000
SOURCE_MAX_LENGTH = 64  # stories.import_source
ORIGINAL_ID_MAX_LENGTH = 255  # stories.import_original_id
# How imported segments say who wrote them: `model` is the import's source.
IMPORT_PROVIDER = "import"


# --- Export -----------------------------------------------------------------------


def _clean(name: str, value: str, max_length: int, *, required: bool) -> str:
    """`value` without surrounding spaces, within bounds; INVALID_ARGUMENT naming the field."""
    value = value.strip()
    if required and not value:
        raise InvalidArgument(f"{name} is required")
    if len(value) > max_length:
        raise InvalidArgument(f"{name} must be at most {max_length} characters")
    # Postgres text cannot hold NUL; refuse it here rather than fail in the database.
    if "\x00" in value:
        raise InvalidArgument(f"{name} must not contain NUL characters")
    return value


def validate_author_name(author_name: str) -> str:
    return _clean("author_name", author_name, AUTHOR_NAME_MAX_LENGTH, required=False)


async def export_story(
    db: Database, user_id: uuid.UUID, story_id: uuid.UUID, fmt: Format, author_name: str
) -> ExportFile:
    """The user's story's followed path as a file; NOT_FOUND when not theirs."""
    async with db.session_scope() as session:
        story = await repository.story_of(session, user_id, story_id)
        if story is None:
            raise NotFound("story not found")
        texts = await repository.followed_path_texts(session, story_id)
    exported = ExportDocument(
        id=story.id,
        title=story.title,
        genre=story.genre,
        characters=list(story.characters),
        author=author_name,
        sections=[Section(text) for text in texts],
    )
    return render(exported, fmt)


# --- Import -----------------------------------------------------------------------


@dataclass(frozen=True)
class ImportedStory:
    """A validated ImportStory request."""

    user_id: uuid.UUID
    source: str
    original_id: str
    title: str
    genre: str
    characters: list[str]
    opening_line: str | None
    segments: list[str]
    is_complete: bool
    created_at: dt.datetime | None
    updated_at: dt.datetime | None


def validate_import(
    *,
    user_id: uuid.UUID,
    source: str,
    original_id: str,
    title: str,
    genre: str,
    characters: Sequence[str],
    opening_line: str | None,
    segments: Sequence[str],
    is_complete: bool,
    created_at: dt.datetime | None,
    updated_at: dt.datetime | None,
) -> ImportedStory:
    source = _clean("source", source, SOURCE_MAX_LENGTH, required=True)
    original_id = _clean("original_id", original_id, ORIGINAL_ID_MAX_LENGTH, required=True)
    title = _clean("title", title, TITLE_MAX_LENGTH, required=True)
    genre = _clean("genre", genre, GENRE_MAX_LENGTH, required=True)
    if len(characters) > MAX_CHARACTERS:
        raise InvalidArgument(f"characters must have at most {MAX_CHARACTERS} items")
    names = [
        _clean(f"characters[{index}]", name, CHARACTER_MAX_LENGTH, required=True)
        for index, name in enumerate(characters)
    ]
    opening_line = (
        _clean("opening_line", opening_line or "", OPENING_LINE_MAX_LENGTH, required=False) or None
    )
    if not 1 <= len(segments) <= MAX_SEGMENTS:
        raise InvalidArgument(f"segments must have 1 to {MAX_SEGMENTS} items")
    texts = [
        _clean(f"segments[{index}]", text, SEGMENT_MAX_LENGTH, required=True)
        for index, text in enumerate(segments)
    ]
    return ImportedStory(
        user_id=user_id,
        source=source,
        original_id=original_id,
        title=title,
        genre=genre,
        characters=names,
        opening_line=opening_line,
        segments=texts,
        is_complete=is_complete,
        created_at=created_at,
        updated_at=updated_at,
    )


def _kind(position: int, count: int, is_complete: bool) -> SegmentKind:
    if position == 1:
        return SegmentKind.opening
    if position == count and is_complete:
        return SegmentKind.ending
    return SegmentKind.continuation


def word_count(text: str) -> int:
    # As migration 0008 counted existing segments: runs of non-space.
    return len(text.split())


async def import_story(session: AsyncSession, story: ImportedStory) -> tuple[uuid.UUID, bool]:
    """Store the story and its segments as one chain (the followed path), once
    per (user, source, original id): (its id, True), or (the id of the one
    imported before, False) with nothing changed."""
    await refuse_deleted_user(session, story.user_id)
    created_at = story.created_at or utcnow()
    updated_at = story.updated_at or created_at
    story_id = uuid.uuid4()
    segment_ids = [uuid.uuid4() for _ in story.segments]
    inserted = await repository.insert_story_once(
        session,
        {
            Story.id.key: story_id,
            Story.user_id.key: story.user_id,
            Story.title.key: story.title,
            Story.genre.key: story.genre,
            Story.characters.key: story.characters,
            Story.opening_line.key: story.opening_line,
            Story.is_complete.key: story.is_complete,
            Story.head_segment_id.key: segment_ids[-1],
            Story.import_source.key: story.source,
            Story.import_original_id.key: story.original_id,
            Story.created_at.key: created_at,
            Story.updated_at.key: updated_at,
        },
    )
    if inserted is None:
        existing = await repository.imported_story_id(
            session, story.user_id, story.source, story.original_id
        )
        if existing is None:  # deleted between the two statements: import it afresh
            return await import_story(session, story)
        return existing, False
    count = len(story.segments)
    await repository.insert_segments(
        session,
        [
            {
                "id": segment_id,
                "story_id": story_id,
                "parent_id": segment_ids[index - 1] if index else None,
                "position": index + 1,
                "kind": _kind(index + 1, count, story.is_complete).value,
                "text": text,
                "word_count": word_count(text),
                "text_source": RevisionSource.imported.value,
                "on_path": True,
                "provider": IMPORT_PROVIDER,
                "model": story.source,
                "is_language_model": False,
                # No generation made it.
                "generation_id": "",
                # The source keeps no time per segment: the opening is as old
                # as the story, the rest as its last change.
                "created_at": created_at if index == 0 else updated_at,
            }
            for index, (segment_id, text) in enumerate(
                zip(segment_ids, story.segments, strict=True)
            )
        ],
    )
    return story_id, True
