"""All SQL of the generation service."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_generation.generations.domain import STARTED
from fabula_generation.generations.models import Generation


async def add_started_generation(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Insert a started generation; False when one with its id exists already."""
    inserted = await session.scalar(
        insert(Generation)
        .values(**values, outcome=STARTED)
        .on_conflict_do_nothing(index_elements=[Generation.id])
        .returning(Generation.id)
    )
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
    session: AsyncSession, cutoff: dt.datetime, limit: int, error: str
) -> list[Generation]:
    """Mark up to `limit` generations started before `cutoff` as failed and
    return them. Rows being finished right now are skipped (theirs to finish)."""
    due = (
        select(Generation.id)
        .where(Generation.outcome == STARTED, Generation.created_at < cutoff)
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
