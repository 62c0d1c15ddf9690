"""Projects (CRUD, validation) and narratives (reads, views, downloads, export)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fabula_common.db import Database
from fabula_common.errors import InvalidArgument, NotFound
from fabula_common.pagination import decode_cursor, encode_cursor, page_limit
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_stories.exchange.formats import ExportDocument, ExportFile, Format, Section, render
from fabula_stories.leaving.service import refuse_deleted_reader, refuse_deleted_user
from fabula_stories.projects import repository
from fabula_stories.projects.models import (
    DESCRIPTION_MAX_LENGTH,
    PRODUCTION_TYPES,
    PROJECT_NAME_MAX_LENGTH,
    WORLD_NOTES_MAX_LENGTH,
    Narrative,
    Project,
)
from fabula_stories.stories.models import GENRE_MAX_LENGTH

# What UpdateProject's `fields` may name.
UPDATABLE_FIELDS = frozenset(
    {"name", "description", "default_genre", "default_production_type", "world_notes"}
)


T = TypeVar("T", Project, Narrative)


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    next_cursor: str


# --- Input -----------------------------------------------------------------------


def parse_id(value: str, what: str) -> uuid.UUID:
    # No project or narrative has a malformed id: asking for one finds nothing.
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(f"{what} not found") from None


def _text(name: str, value: str, max_length: int, *, required: bool = False) -> str:
    value = value.strip()
    if required and not value:
        raise InvalidArgument(f"{name} is required")
    if len(value) > max_length:
        raise InvalidArgument(f"{name} must be at most {max_length} characters")
    # Postgres text cannot hold NUL; refuse it here rather than fail in the database.
    if "\x00" in value:
        raise InvalidArgument(f"{name} must not contain NUL characters")
    return value


def validate_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """The project fields given, cleaned; INVALID_ARGUMENT naming a bad one.
    `default_production_type` is a name of PRODUCTION_TYPES or None."""
    rules = {
        "name": (PROJECT_NAME_MAX_LENGTH, True),
        "description": (DESCRIPTION_MAX_LENGTH, False),
        "default_genre": (GENRE_MAX_LENGTH, False),
        "world_notes": (WORLD_NOTES_MAX_LENGTH, False),
    }
    cleaned: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "default_production_type":
            if value is not None and value not in PRODUCTION_TYPES:
                raise InvalidArgument(f"default_production_type {value!r} is not known")
            cleaned[name] = value
        else:
            max_length, required = rules[name]
            cleaned[name] = _text(name, value, max_length, required=required)
    return cleaned


def update_fields(names: Sequence[str], given: dict[str, Any]) -> dict[str, Any]:
    """The fields UpdateProject names, from `given`; INVALID_ARGUMENT for an
    unknown name or none at all."""
    if not names:
        raise InvalidArgument("fields must name at least one field to change")
    unknown = sorted(set(names) - UPDATABLE_FIELDS)
    if unknown:
        raise InvalidArgument(
            f"fields {', '.join(unknown)} cannot be changed; only "
            + ", ".join(sorted(UPDATABLE_FIELDS))
        )
    return validate_fields({name: given[name] for name in names})


# --- Projects --------------------------------------------------------------------


async def create_project(db: Database, user_id: uuid.UUID, fields: dict[str, Any]) -> Project:
    values = validate_fields(fields)
    async with db.session_scope() as session:
        await refuse_deleted_user(session, user_id)
        project = Project(user_id=user_id, **values)
        session.add(project)
        await session.flush()
        await session.refresh(project)
        return project


async def get_project(session: AsyncSession, user_id: uuid.UUID, project_id: uuid.UUID) -> Project:
    project = await repository.get_project(session, user_id, project_id)
    if project is None:
        raise NotFound("project not found")
    return project


async def list_projects(
    session: AsyncSession, user_id: uuid.UUID, limit: int, cursor: str
) -> Page[Project]:
    limit = page_limit(limit)
    after = _after(cursor)
    await refuse_deleted_reader(session, user_id)
    # One row more than asked tells whether another page follows.
    rows = list(await repository.list_projects(session, user_id, limit + 1, after))
    return _page(rows, limit)


async def update_project(
    session: AsyncSession, user_id: uuid.UUID, project_id: uuid.UUID, values: dict[str, Any]
) -> Project:
    project = await repository.update_project(session, user_id, project_id, values)
    if project is None:
        raise NotFound("project not found")
    return project


async def delete_project(session: AsyncSession, user_id: uuid.UUID, project_id: uuid.UUID) -> None:
    if not await repository.delete_project(session, user_id, project_id):
        raise NotFound("project not found")


# --- Narratives ------------------------------------------------------------------


async def list_narratives(
    session: AsyncSession, user_id: uuid.UUID, project_id: uuid.UUID, limit: int, cursor: str
) -> Page[Narrative]:
    limit = page_limit(limit)
    after = _after(cursor)
    await get_project(session, user_id, project_id)
    rows = list(await repository.list_narratives(session, user_id, project_id, limit + 1, after))
    return _page(rows, limit)


async def get_narrative(
    session: AsyncSession, user_id: uuid.UUID, narrative_id: uuid.UUID, *, count_view: bool
) -> Narrative:
    if count_view:
        narrative = await repository.count_view(session, user_id, narrative_id)
    else:
        narrative = await repository.get_narrative(session, user_id, narrative_id)
    if narrative is None:
        raise NotFound("narrative not found")
    return narrative


async def list_versions(
    session: AsyncSession, user_id: uuid.UUID, narrative_id: uuid.UUID
) -> Sequence[Narrative]:
    versions = await repository.lineage(session, user_id, narrative_id)
    if versions is None:
        raise NotFound("narrative not found")
    return versions


async def export_narrative(
    db: Database, user_id: uuid.UUID, narrative_id: uuid.UUID, fmt: Format, author_name: str
) -> ExportFile:
    """The narrative as a file, its download counted (and its format recorded)
    in the same transaction that reads it."""
    async with db.session_scope() as session:
        narrative = await repository.count_download(session, user_id, narrative_id, fmt.value)
        if narrative is None:
            raise NotFound("narrative not found")
        document = ExportDocument(
            id=narrative.id,
            title=narrative.title,
            genre=narrative.genre,
            author=author_name,
            sections=split_sections(narrative.text),
        )
    return render(document, fmt)


# A section heading: a line "## Title" (Markdown's second level; the first is the title's).
_HEADING = re.compile(r"^##[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


def split_sections(text: str) -> list[Section]:
    """The narrative's sections, for a chapter each: split at its "## "
    headings; a text without headings is one untitled section (its
    blank-line-separated blocks are its paragraphs)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    headings = list(_HEADING.finditer(text))
    if not headings:
        return [Section(text)]
    sections = []
    preamble = text[: headings[0].start()].strip()
    if preamble:
        sections.append(Section(preamble))
    for index, heading in enumerate(headings):
        end = headings[index + 1].start() if index + 1 < len(headings) else len(text)
        sections.append(Section(text[heading.end() : end].strip(), heading=heading.group(1)))
    return sections


# --- Pages -------------------------------------------------------------------------


def _after(cursor: str) -> tuple[Any, uuid.UUID] | None:
    key = decode_cursor(cursor)
    if key is None:
        return None
    moment, raw_id = key
    try:
        return moment, uuid.UUID(raw_id)
    except ValueError:
        raise InvalidArgument("cursor is malformed") from None


def _page(rows: list[T], limit: int) -> Page[T]:
    items = rows[:limit]
    next_cursor = ""
    if len(rows) > limit:
        next_cursor = encode_cursor(items[-1].created_at, str(items[-1].id))
    return Page(items=items, next_cursor=next_cursor)
