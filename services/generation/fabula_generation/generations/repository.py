"""All SQL of the generation service."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from fabula_common.db import CompiledQuery, driver_of
from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_generation.generations.domain import STARTED
from fabula_generation.generations.models import Generation

_STARTED_COLUMNS = (
    *("id", "user_id", "purpose", "subject_kind", "subject_id", "reservation_id"),
    *("provider", "model", "prompt_tokens", "completion_tokens", "usage_estimated"),
    *("cost_usd", "duration_ms", "delivery", "owner", "error", "attributes", "created_at"),
)
# Compiled once: a started row precedes every model call.
_ADD_STARTED = CompiledQuery.of(
    insert(Generation)
    .values(
        {
            name: bindparam(name, type_=Generation.__table__.c[name].type)
            for name in _STARTED_COLUMNS
        }
        | {"outcome": STARTED}
    )
    .on_conflict_do_nothing(index_elements=[Generation.id])
    .returning(Generation.id)
)


async def add_started_generation(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Insert a started generation (values: the columns of _STARTED_COLUMNS;
    owner, error and attributes may be left out); False when one with its id
    exists already."""
    values = {"owner": None, "error": None, "attributes": None, **values}
    if values["attributes"] is not None:  # the raw driver takes JSON as text
        values["attributes"] = json.dumps(values["attributes"])
    driver = await driver_of(session)
    inserted = await driver.fetchval(_ADD_STARTED.sql, *_ADD_STARTED.arguments(values))
    return inserted is not None


async def finish_generation(
    session: AsyncSession, generation_id: uuid.UUID, values: dict[str, Any]
) -> Generation | None:
    """Give a started generation its outcome; None when it is no longer started
    (the sweeper settled it as abandoned)."""
    return await session.scalar(
        update(Generation)
        .where(Generation.id == generation_id, Generation.outcome == STARTED)
        .values(**values)
        .returning(Generation)
        .execution_options(synchronize_session=False)
    )


async def abandon_started_before(
    session: AsyncSession,
    cutoff: dt.datetime,
    limit: int,
    error: str,
    *,
    owner: str | None = None,
) -> list[Generation]:
    """Mark up to `limit` generations started before `cutoff` (by `owner`,
    when given) as failed and return them. Rows being finished right now are
    skipped (theirs to finish)."""
    conditions = [Generation.outcome == STARTED, Generation.created_at < cutoff]
    if owner is not None:
        conditions.append(Generation.owner == owner)
    due = (
        select(Generation.id)
        .where(*conditions)
        .order_by(Generation.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = await session.scalars(
        update(Generation)
        .where(Generation.id.in_(due.scalar_subquery()), Generation.outcome == STARTED)
        .values(outcome="failed", completion_tokens=0, error=error)
        .returning(Generation)
        .execution_options(synchronize_session=False)
    )
    return list(rows)


async def get_generation(session: AsyncSession, generation_id: uuid.UUID) -> Generation | None:
    return await session.get(Generation, generation_id)


async def outcomes_of(session: AsyncSession, ids: list[str]) -> dict[str, list[str]]:
    """The outcomes of the generations with these ids, or settling reservations
    of these ids (a caller of the previous release reserved under its own id),
    keyed by the id asked; ids nothing matches are absent."""
    uuids = []
    for value in ids:
        try:
            uuids.append(uuid.UUID(value))
        except ValueError:
            pass  # not a generation id; may still be a reservation's
    rows = await session.execute(
        select(Generation.id, Generation.reservation_id, Generation.outcome).where(
            or_(Generation.id.in_(uuids), Generation.reservation_id.in_(ids))
        )
    )
    asked = set(ids)
    found: dict[str, list[str]] = {}
    for generation_id, reservation_id, outcome in rows:
        for key in {str(generation_id), reservation_id} & asked:
            found.setdefault(key, []).append(outcome)
    return found
