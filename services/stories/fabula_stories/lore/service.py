"""A story's memory, author's note, favourite mark and lore: validation,
ownership (another user's story or entry is NOT_FOUND) and the operations.
Takes a session; never commits (the caller's transaction scope does)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from fabula_common.db import utcnow
from fabula_common.errors import Conflict, InvalidArgument, NotFound
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_stories.stories.models import (
    TITLE_MAX_LENGTH,
    LoreEntry,
    SecondaryLogic,
    Segment,
    Story,
)

MEMORY_MAX_LENGTH = 10_000
AUTHORS_NOTE_MAX_LENGTH = 2_000
MAX_LORE_KEYS = 20
LORE_KEY_MAX_LENGTH = 100
LORE_TEXT_MAX_LENGTH = 4_000
LORE_PRIORITY_LIMIT = 1_000
MAX_LORE_ENTRIES = 200

# The fields UpdateLoreEntry may change.
LORE_FIELDS = frozenset(
    {"keys", "secondary_keys", "secondary_logic", "text", "priority", "constant", "enabled"}
)


def _clean(name: str, value: str, max_length: int, *, required: bool = False) -> str:
    value = value.strip()
    if required and not value:
        raise InvalidArgument(f"{name} must not be empty")
    if len(value) > max_length:
        raise InvalidArgument(f"{name} must be at most {max_length} characters")
    # Postgres text cannot hold NUL; refuse it here rather than fail in the database.
    if "\x00" in value:
        raise InvalidArgument(f"{name} must not contain NUL characters")
    return value


# --- Story metadata ----------------------------------------------------------------


@dataclass(frozen=True)
class StoryChanges:
    """A validated UpdateStory: None leaves a field as it is."""

    title: str | None = None
    memory: str | None = None
    authors_note: str | None = None
    is_favorite: bool | None = None


def validate_story_changes(
    *,
    title: str | None,
    memory: str | None,
    authors_note: str | None,
    is_favorite: bool | None,
) -> StoryChanges:
    return StoryChanges(
        title=None if title is None else _clean("title", title, TITLE_MAX_LENGTH, required=True),
        # Empty clears.
        memory=None if memory is None else _clean("memory", memory, MEMORY_MAX_LENGTH),
        authors_note=(
            None
            if authors_note is None
            else _clean("authors_note", authors_note, AUTHORS_NOTE_MAX_LENGTH)
        ),
        is_favorite=is_favorite,
    )


async def owned_story(
    session: AsyncSession, user_id: uuid.UUID, story_id: uuid.UUID, *, for_update: bool = False
) -> Story:
    query = select(Story).where(Story.id == story_id, Story.user_id == user_id)
    if for_update:
        query = query.with_for_update()
    story = (await session.execute(query)).scalar_one_or_none()
    if story is None:
        raise NotFound("story not found")
    return story


async def followed_length(session: AsyncSession, story_id: uuid.UUID) -> int:
    """How many segments the followed path has."""
    return (
        await session.execute(
            select(func.count()).where(Segment.story_id == story_id, Segment.on_path)
        )
    ).scalar_one()


async def update_story(
    session: AsyncSession, user_id: uuid.UUID, story_id: uuid.UUID, changes: StoryChanges
) -> tuple[Story, int]:
    """The story with the changes applied, and its followed path's length."""
    story = await owned_story(session, user_id, story_id, for_update=True)
    for name in ("title", "memory", "authors_note", "is_favorite"):
        value = getattr(changes, name)
        if value is not None:
            setattr(story, name, value)
    story.updated_at = utcnow()
    await session.flush()
    return story, await followed_length(session, story.id)


# --- Lore -----------------------------------------------------------------------


@dataclass(frozen=True)
class LoreFields:
    """A lore entry's fields, validated."""

    keys: list[str] = field(default_factory=list)
    secondary_keys: list[str] = field(default_factory=list)
    secondary_logic: SecondaryLogic = SecondaryLogic.and_any
    text: str = ""
    priority: int = 0
    constant: bool = False
    enabled: bool = True


def _keys(name: str, keys: Sequence[str]) -> list[str]:
    if len(keys) > MAX_LORE_KEYS:
        raise InvalidArgument(f"{name} must have at most {MAX_LORE_KEYS} items")
    cleaned: list[str] = []
    seen: set[str] = set()
    for key in keys:
        key = _clean(f"{name} item", key, LORE_KEY_MAX_LENGTH, required=True)
        # Matching ignores case, so "Mara" and "mara" are one key.
        if key.casefold() not in seen:
            seen.add(key.casefold())
            cleaned.append(key)
    return cleaned


def validate_lore(
    *,
    keys: Sequence[str],
    secondary_keys: Sequence[str],
    secondary_logic: SecondaryLogic,
    text: str,
    priority: int,
    constant: bool,
    enabled: bool,
) -> LoreFields:
    cleaned_keys = _keys("keys", keys)
    if not cleaned_keys and not constant:
        raise InvalidArgument("keys must have at least one key unless the entry is constant")
    if not -LORE_PRIORITY_LIMIT <= priority <= LORE_PRIORITY_LIMIT:
        raise InvalidArgument(
            f"priority must be between {-LORE_PRIORITY_LIMIT} and {LORE_PRIORITY_LIMIT}"
        )
    return LoreFields(
        keys=cleaned_keys,
        secondary_keys=_keys("secondary_keys", secondary_keys),
        secondary_logic=secondary_logic,
        text=_clean("text", text, LORE_TEXT_MAX_LENGTH, required=True),
        priority=priority,
        constant=constant,
        enabled=enabled,
    )


def _apply(entry: LoreEntry, fields: LoreFields) -> None:
    entry.keys = fields.keys
    entry.secondary_keys = fields.secondary_keys
    entry.secondary_logic = fields.secondary_logic.value
    entry.text = fields.text
    entry.priority = fields.priority
    entry.constant = fields.constant
    entry.enabled = fields.enabled


async def create_lore_entry(
    session: AsyncSession, user_id: uuid.UUID, story_id: uuid.UUID, fields: LoreFields
) -> LoreEntry:
    # The story row is locked so that concurrent creates cannot pass the limit together.
    story = await owned_story(session, user_id, story_id, for_update=True)
    count = (
        await session.execute(
            select(func.count()).select_from(LoreEntry).where(LoreEntry.story_id == story.id)
        )
    ).scalar_one()
    if count >= MAX_LORE_ENTRIES:
        raise Conflict(
            f"a story may have at most {MAX_LORE_ENTRIES} lore entries",
            metadata={"story_id": str(story.id)},
        )
    now = utcnow()
    entry = LoreEntry(id=uuid.uuid4(), story_id=story.id, created_at=now, updated_at=now)
    _apply(entry, fields)
    session.add(entry)
    await session.flush()
    return entry


def _owned_entries(user_id: uuid.UUID, story_id: uuid.UUID):
    return (
        select(LoreEntry)
        .join(Story, Story.id == LoreEntry.story_id)
        .where(LoreEntry.story_id == story_id, Story.user_id == user_id)
    )


async def list_lore_entries(
    session: AsyncSession, user_id: uuid.UUID, story_id: uuid.UUID
) -> list[LoreEntry]:
    """By priority (highest first), then oldest first."""
    await owned_story(session, user_id, story_id)
    entries = await session.scalars(
        _owned_entries(user_id, story_id).order_by(
            LoreEntry.priority.desc(), LoreEntry.created_at, LoreEntry.id
        )
    )
    return list(entries)


async def get_lore_entry(
    session: AsyncSession,
    user_id: uuid.UUID,
    story_id: uuid.UUID,
    entry_id: uuid.UUID,
    *,
    for_update: bool = False,
) -> LoreEntry:
    query = _owned_entries(user_id, story_id).where(LoreEntry.id == entry_id)
    if for_update:
        query = query.with_for_update(of=LoreEntry)
    entry = (await session.execute(query)).scalar_one_or_none()
    if entry is None:
        raise NotFound("lore entry not found")
    return entry


def current_fields(entry: LoreEntry) -> LoreFields:
    return LoreFields(
        keys=list(entry.keys),
        secondary_keys=list(entry.secondary_keys),
        secondary_logic=SecondaryLogic(entry.secondary_logic),
        text=entry.text,
        priority=entry.priority,
        constant=entry.constant,
        enabled=entry.enabled,
    )


def validate_field_mask(names: Sequence[str]) -> set[str]:
    if not names:
        raise InvalidArgument("fields must name at least one field to change")
    unknown = sorted(set(names) - LORE_FIELDS)
    if unknown:
        raise InvalidArgument(
            f"fields: unknown field {unknown[0]!r}; one of " + ", ".join(sorted(LORE_FIELDS))
        )
    return set(names)


async def update_lore_entry(
    session: AsyncSession,
    user_id: uuid.UUID,
    story_id: uuid.UUID,
    entry_id: uuid.UUID,
    changed: set[str],
    proposed: dict,
) -> LoreEntry:
    """Change the `changed` fields to their `proposed` values; the entry as a
    whole must still be valid (e.g. a keyed entry keeps a key)."""
    entry = await get_lore_entry(session, user_id, story_id, entry_id, for_update=True)
    merged = {**current_fields(entry).__dict__, **{name: proposed[name] for name in changed}}
    _apply(entry, validate_lore(**merged))
    entry.updated_at = utcnow()
    await session.flush()
    return entry


async def delete_lore_entry(
    session: AsyncSession, user_id: uuid.UUID, story_id: uuid.UUID, entry_id: uuid.UUID
) -> None:
    entry = await get_lore_entry(session, user_id, story_id, entry_id)
    await session.execute(delete(LoreEntry).where(LoreEntry.id == entry.id))


# --- Context -----------------------------------------------------------------------


async def segment_to_follow(
    session: AsyncSession, story: Story, after_segment_id: uuid.UUID | None
) -> uuid.UUID | None:
    """The segment the next one would follow: `after_segment_id` (a segment
    of the story), else the story's head (None before its opening exists)."""
    if after_segment_id is not None:
        found = (
            await session.execute(
                select(Segment.id).where(
                    Segment.id == after_segment_id, Segment.story_id == story.id
                )
            )
        ).scalar_one_or_none()
        if found is None:
            raise NotFound("segment not found")
        return found
    if story.head_segment_id is not None:
        return story.head_segment_id
    # A story written before heads were kept: the end of its followed path.
    return (
        await session.execute(
            select(Segment.id)
            .where(Segment.story_id == story.id, Segment.on_path)
            .order_by(Segment.position.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
