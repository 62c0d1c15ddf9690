"""Pictures rules: tutorials (validated in both languages), drawings and
their edits, picture stories and how a picture story's generation is stored
or discarded. Nothing here commits; the edge owns transactions."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fabula.generation.v1 import pictures_pb2 as generation_pictures
from fabula.stories.v1 import pictures_pb2
from fabula_common.db import utcnow
from fabula_common.errors import InvalidArgument, NotFound
from fabula_common.pagination import decode_cursor, encode_cursor, page_limit
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_stories.pictures import repository
from fabula_stories.pictures.models import (
    CATEGORY_MAX_LENGTH,
    DESCRIPTION_MAX_LENGTH,
    PHOTO_ID_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    URL_MAX_LENGTH,
    Drawing,
    DrawingEdit,
    PictureStory,
    Tutorial,
)
from fabula_stories.stories import events
from fabula_stories.stories.events import DeliverySubjects
from fabula_stories.stories.models import PendingGeneration
from fabula_stories.stories.repository import take_pending
from fabula_stories.stories.service import ClaimLost

MAX_STEPS = 50
MAX_INSTRUCTION_CHARS = 1000
MAX_DIRECTION_CHARS = 1000
TUTORIAL_FIELDS = ("category", "title", "description", "thumbnail_url", "steps")
PICTURE_STORY = "picture_story"
DRAWING_DELETED = "drawing-deleted"


def parse_id(value: str, what: str) -> uuid.UUID:
    """No such resource has a malformed id, so asking for one finds nothing."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(f"{what} not found") from None


def parse_photo_id(value: str) -> str:
    value = value.strip()
    if not value or len(value) > PHOTO_ID_MAX_LENGTH:
        raise InvalidArgument(f"photo_id: required, at most {PHOTO_ID_MAX_LENGTH} characters")
    return value


# --- Tutorials -------------------------------------------------------------------


def _text(value: str, field: str, limit: int) -> str:
    value = value.strip()
    if not value:
        raise InvalidArgument(f"{field}: required")
    if len(value) > limit:
        raise InvalidArgument(f"{field}: at most {limit} characters")
    return value


def _url(value: str, field: str, *, required: bool = False) -> str:
    value = value.strip()
    if not value and not required:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(value) > URL_MAX_LENGTH:
        raise InvalidArgument(f"{field}: an http:// or https:// URL of at most {URL_MAX_LENGTH} characters")
    return value


def _both(text: pictures_pb2.LocalizedText, field: str, limit: int) -> dict[str, str]:
    """English and German are both required."""
    return {
        f"{field}_en": _text(text.en, f"{field}.en", limit),
        f"{field}_de": _text(text.de, f"{field}.de", limit),
    }


def _steps(steps: list[pictures_pb2.TutorialStep]) -> list[dict[str, Any]]:
    if not steps:
        raise InvalidArgument("steps: at least one step")
    if len(steps) > MAX_STEPS:
        raise InvalidArgument(f"steps: at most {MAX_STEPS}")
    validated = []
    for number, step in enumerate(steps, start=1):
        # Numbered 1..n in order; a number sent must say the same.
        if step.step_number not in (0, number):
            raise InvalidArgument(f"steps[{number - 1}].step_number: must be {number}")
        validated.append(
            {
                "step_number": number,
                "instruction_en": _text(
                    step.instruction.en, f"steps[{number - 1}].instruction.en", MAX_INSTRUCTION_CHARS
                ),
                "instruction_de": _text(
                    step.instruction.de, f"steps[{number - 1}].instruction.de", MAX_INSTRUCTION_CHARS
                ),
                "image_url": _url(step.image_url, f"steps[{number - 1}].image_url"),
            }
        )
    return validated


def tutorial_values(fields: pictures_pb2.TutorialFields, names: tuple[str, ...]) -> dict[str, Any]:
    """The columns the named fields set, validated."""
    values: dict[str, Any] = {}
    for name in names:
        if name == "category":
            category = _text(fields.category, "category", CATEGORY_MAX_LENGTH).lower()
            values["category"] = category
        elif name == "title":
            values |= _both(fields.title, "title", TITLE_MAX_LENGTH)
        elif name == "description":
            values |= _both(fields.description, "description", DESCRIPTION_MAX_LENGTH)
        elif name == "thumbnail_url":
            values["thumbnail_url"] = _url(fields.thumbnail_url, "thumbnail_url")
        elif name == "steps":
            values["steps"] = _steps(list(fields.steps))
        else:
            raise InvalidArgument(f"fields: unknown field {name!r}")
    return values


async def create_tutorial(session: AsyncSession, fields: pictures_pb2.TutorialFields) -> Tutorial:
    tutorial = Tutorial(id=uuid.uuid4(), **tutorial_values(fields, TUTORIAL_FIELDS))
    session.add(tutorial)
    await session.flush()
    return tutorial


async def update_tutorial(
    session: AsyncSession,
    tutorial_id: uuid.UUID,
    fields: pictures_pb2.TutorialFields,
    names: list[str],
) -> Tutorial:
    if not names:
        raise InvalidArgument("fields: name at least one field to change")
    values = tutorial_values(fields, tuple(dict.fromkeys(names)))
    tutorial = await get_tutorial(session, tutorial_id)
    for key, value in values.items():
        setattr(tutorial, key, value)
    tutorial.updated_at = utcnow()
    await session.flush()
    return tutorial


async def get_tutorial(session: AsyncSession, tutorial_id: uuid.UUID) -> Tutorial:
    tutorial = await repository.get_tutorial(session, tutorial_id)
    if tutorial is None:
        raise NotFound("tutorial not found")
    return tutorial


# --- Drawings --------------------------------------------------------------------


@dataclass(frozen=True)
class DrawingView:
    drawing: Drawing
    edits: list[DrawingEdit]
    story_count: int

    @property
    def newest_photo_id(self) -> str:
        return self.edits[-1].photo_id if self.edits else self.drawing.photo_id


async def drawing_view(session: AsyncSession, user_id: uuid.UUID, drawing_id: uuid.UUID) -> DrawingView:
    drawing = await repository.get_drawing(session, user_id, drawing_id)
    if drawing is None:
        raise NotFound("drawing not found")
    return (await _views(session, [drawing]))[0]


async def _views(session: AsyncSession, drawings: list[Drawing]) -> list[DrawingView]:
    ids = [drawing.id for drawing in drawings]
    edits = await repository.edits_of(session, ids)
    counts = await repository.story_counts(session, ids)
    return [DrawingView(d, edits.get(d.id, []), counts.get(d.id, 0)) for d in drawings]


async def create_drawing(
    session: AsyncSession, user_id: uuid.UUID, photo_id: str, tutorial_id: uuid.UUID | None
) -> DrawingView:
    if tutorial_id is not None:
        await get_tutorial(session, tutorial_id)
    drawing = Drawing(id=uuid.uuid4(), user_id=user_id, photo_id=photo_id, tutorial_id=tutorial_id)
    session.add(drawing)
    await session.flush()
    return DrawingView(drawing, [], 0)


async def add_edit(
    session: AsyncSession, user_id: uuid.UUID, drawing_id: uuid.UUID, photo_id: str
) -> DrawingView:
    # Locked: concurrent edits of one drawing get consecutive versions.
    drawing = await repository.get_drawing(session, user_id, drawing_id, for_update=True)
    if drawing is None:
        raise NotFound("drawing not found")
    version = await repository.next_edit_version(session, drawing_id)
    session.add(DrawingEdit(id=uuid.uuid4(), drawing_id=drawing_id, photo_id=photo_id, version=version))
    drawing.updated_at = utcnow()
    await session.flush()
    return await drawing_view(session, user_id, drawing_id)


async def list_drawings(
    session: AsyncSession, user_id: uuid.UUID, limit: int, cursor: str
) -> tuple[list[DrawingView], str]:
    limit = page_limit(limit)
    drawings = await repository.list_drawings(session, user_id, _after(cursor), limit + 1)
    page, more = drawings[:limit], len(drawings) > limit
    next_cursor = encode_cursor(page[-1].created_at, str(page[-1].id)) if more else ""
    return await _views(session, page), next_cursor


def _after(cursor: str) -> tuple[dt.datetime, uuid.UUID] | None:
    key = decode_cursor(cursor)
    if key is None:
        return None
    try:
        return key[0], uuid.UUID(key[1])
    except ValueError:
        raise InvalidArgument("cursor is malformed") from None


async def delete_drawing(session: AsyncSession, user_id: uuid.UUID, drawing_id: uuid.UUID) -> None:
    if not await repository.delete_drawing(session, user_id, drawing_id):
        raise NotFound("drawing not found")


# --- Picture stories -------------------------------------------------------------


def validate_direction(direction: str) -> str:
    direction = direction.strip()
    if len(direction) > MAX_DIRECTION_CHARS:
        raise InvalidArgument(f"direction: at most {MAX_DIRECTION_CHARS} characters")
    return direction


async def claim_generation(
    session: AsyncSession,
    user_id: uuid.UUID,
    drawing_id: uuid.UUID,
    generation_id: uuid.UUID,
    lease_seconds: float,
    owner: str,
) -> None:
    """Record the picture story's generation before the model call, as a
    story segment's is (stories/events.py): exactly one of
    GenerationDelivered / GenerationDiscarded follows, from the writer or,
    if it dies, the claim sweeper."""
    session.add(
        PendingGeneration(
            generation_id=generation_id,
            story_id=drawing_id,
            user_id=user_id,
            kind=PICTURE_STORY,
            claimed_until=utcnow() + dt.timedelta(seconds=lease_seconds),
            owner=owner,
        )
    )
    await session.flush()


async def store_picture_story(
    session: AsyncSession,
    subjects: DeliverySubjects,
    generation_id: uuid.UUID,
    photo_id: str,
    direction: str,
    answer: generation_pictures.PictureStoryResponse,
) -> PictureStory | None:
    """Store the story and report its generation delivered, in one
    transaction; ClaimLost when the claim was discarded meanwhile. None (the
    generation discarded) when the drawing was deleted meanwhile."""
    pending = await take_pending(session, generation_id)
    if pending is None:
        raise ClaimLost("the picture story could not be stored in time; retry")
    drawing = await repository.get_drawing(session, pending.user_id, pending.story_id)
    if drawing is None:
        await events.generation_discarded(session, subjects, pending, DRAWING_DELETED)
        return None
    moderation = answer.moderation
    story = PictureStory(
        id=generation_id,
        user_id=pending.user_id,
        drawing_id=pending.story_id,
        photo_id=photo_id,
        title_en=answer.title_en[:TITLE_MAX_LENGTH],
        text_en=answer.text_en,
        title_de=answer.title_de[:TITLE_MAX_LENGTH],
        text_de=answer.text_de,
        direction=direction,
        generation_time_ms=max(0, answer.duration_ms),
        is_favorite=False,
        moderation={
            "checked": moderation.checked,
            "checker": moderation.checker,
            "flagged": moderation.flagged,
            "categories": list(moderation.categories),
        },
        provider=answer.provider,
        model=answer.model,
        is_language_model=answer.is_language_model,
    )
    session.add(story)
    await session.flush()
    await events.generation_delivered(session, subjects, pending, generation_id)
    return story


async def get_picture_story(session: AsyncSession, user_id: uuid.UUID, story_id: uuid.UUID) -> PictureStory:
    story = await repository.get_picture_story(session, user_id, story_id)
    if story is None:
        raise NotFound("picture story not found")
    return story


async def list_picture_stories(
    session: AsyncSession,
    user_id: uuid.UUID,
    limit: int,
    cursor: str,
    *,
    favorite_only: bool,
    drawing_id: uuid.UUID | None,
) -> tuple[list[PictureStory], str]:
    limit = page_limit(limit)
    stories = await repository.list_picture_stories(
        session, user_id, _after(cursor), limit + 1, favorite_only=favorite_only, drawing_id=drawing_id
    )
    page, more = stories[:limit], len(stories) > limit
    next_cursor = encode_cursor(page[-1].created_at, str(page[-1].id)) if more else ""
    return page, next_cursor


async def set_favorite(
    session: AsyncSession, user_id: uuid.UUID, story_id: uuid.UUID, is_favorite: bool
) -> PictureStory:
    story = await repository.set_favorite(session, user_id, story_id, is_favorite, utcnow())
    if story is None:
        raise NotFound("picture story not found")
    return story


async def delete_picture_story(session: AsyncSession, user_id: uuid.UUID, story_id: uuid.UUID) -> None:
    if not await repository.delete_picture_story(session, user_id, story_id):
        raise NotFound("picture story not found")
