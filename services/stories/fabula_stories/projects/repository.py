"""Queries of projects and narratives. Every read and write names the user:
another user's project or narrative is simply not found."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from fabula_stories.projects.models import Narrative, Project


async def get_project(
    session: AsyncSession, user_id: uuid.UUID, project_id: uuid.UUID, *, for_update: bool = False
) -> Project | None:
    query = select(Project).where(Project.id == project_id, Project.user_id == user_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def list_projects(
    session: AsyncSession,
    user_id: uuid.UUID,
    limit: int,
    after: tuple[dt.datetime, uuid.UUID] | None,
) -> Sequence[Project]:
    query = (
        select(Project)
        .where(Project.user_id == user_id)
        .order_by(Project.created_at.desc(), Project.id.desc())
        .limit(limit)
    )
    if after is not None:
        # A row comparison, so Postgres walks ix_projects_user_id_created_at_id.
        query = query.where(tuple_(Project.created_at, Project.id) < tuple_(*after))
    return list((await session.execute(query)).scalars())


async def update_project(
    session: AsyncSession, user_id: uuid.UUID, project_id: uuid.UUID, values: dict[str, Any]
) -> Project | None:
    query = (
        update(Project)
        .where(Project.id == project_id, Project.user_id == user_id)
        .values(**values, updated_at=func.now())
        .returning(Project)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def delete_project(session: AsyncSession, user_id: uuid.UUID, project_id: uuid.UUID) -> bool:
    """Delete the project (its narratives go by ON DELETE CASCADE); False when absent."""
    query = (
        delete(Project)
        .where(Project.id == project_id, Project.user_id == user_id)
        .returning(Project.id)
    )
    return (await session.execute(query)).scalar_one_or_none() is not None


async def delete_projects_of(session: AsyncSession, user_id: uuid.UUID) -> int:
    """Every project of the user, with their narratives; how many projects went."""
    # Narratives first, by user: their own rows, even one whose project row
    # was already gone would not be left behind.
    await session.execute(delete(Narrative).where(Narrative.user_id == user_id))
    deleted = await session.execute(
        delete(Project).where(Project.user_id == user_id).returning(Project.id)
    )
    return len(deleted.all())


async def list_narratives(
    session: AsyncSession,
    user_id: uuid.UUID,
    project_id: uuid.UUID,
    limit: int,
    after: tuple[dt.datetime, uuid.UUID] | None,
) -> Sequence[Narrative]:
    """Newest first, without their texts (lists never show them)."""
    query = (
        select(Narrative)
        .options(defer(Narrative.text))
        .where(Narrative.project_id == project_id, Narrative.user_id == user_id)
        .order_by(Narrative.created_at.desc(), Narrative.id.desc())
        .limit(limit)
    )
    if after is not None:
        query = query.where(tuple_(Narrative.created_at, Narrative.id) < tuple_(*after))
    return list((await session.execute(query)).scalars())


async def get_narrative(
    session: AsyncSession, user_id: uuid.UUID, narrative_id: uuid.UUID
) -> Narrative | None:
    query = select(Narrative).where(Narrative.id == narrative_id, Narrative.user_id == user_id)
    return (await session.execute(query)).scalar_one_or_none()


async def count_view(
    session: AsyncSession, user_id: uuid.UUID, narrative_id: uuid.UUID
) -> Narrative | None:
    """The narrative with one more view, in one statement (concurrent reads
    each count)."""
    query = (
        update(Narrative)
        .where(Narrative.id == narrative_id, Narrative.user_id == user_id)
        .values(view_count=Narrative.view_count + 1)
        .returning(Narrative)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def count_download(
    session: AsyncSession, user_id: uuid.UUID, narrative_id: uuid.UUID, fmt: str
) -> Narrative | None:
    """The narrative with one more download and `fmt` among its export
    formats (once), in one statement."""
    query = (
        update(Narrative)
        .where(Narrative.id == narrative_id, Narrative.user_id == user_id)
        .values(
            download_count=Narrative.download_count + 1,
            export_formats=func.array_append(
                func.array_remove(Narrative.export_formats, fmt), fmt
            ),
        )
        .returning(Narrative)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def lineage(
    session: AsyncSession, user_id: uuid.UUID, narrative_id: uuid.UUID
) -> Sequence[Narrative] | None:
    """Every version sharing the narrative's root, by version, without
    texts; None when the narrative is not the user's."""
    root = (
        select(Narrative.root_narrative_id)
        .where(Narrative.id == narrative_id, Narrative.user_id == user_id)
        .scalar_subquery()
    )
    query = (
        select(Narrative)
        .options(defer(Narrative.text))
        .where(Narrative.root_narrative_id == root, Narrative.user_id == user_id)
        .order_by(Narrative.version, Narrative.created_at, Narrative.id)
    )
    versions = list((await session.execute(query)).scalars())
    return versions or None


async def newest_version(session: AsyncSession, root_narrative_id: uuid.UUID) -> int:
    query = select(func.max(Narrative.version)).where(
        Narrative.root_narrative_id == root_narrative_id
    )
    return (await session.scalar(query)) or 0


async def insert_narrative(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Store the narrative unless its job already has one; whether it was stored."""
    query = (
        insert(Narrative)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[Narrative.job_id])
        .returning(Narrative.id)
    )
    return (await session.execute(query)).scalar_one_or_none() is not None


async def add_to_project_totals(
    session: AsyncSession, project_id: uuid.UUID, word_count: int, cost_usd: Decimal
) -> None:
    await session.execute(
        update(Project)
        .where(Project.id == project_id)
        .values(
            narrative_count=Project.narrative_count + 1,
            total_word_count=Project.total_word_count + word_count,
            total_cost_usd=Project.total_cost_usd + cost_usd,
            updated_at=func.now(),
        )
    )
