"""All SQL of jobs: the queue (claims, leases), checkpoints and events."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_generation.generations.models import Generation
from fabula_generation.jobs.domain import ACTIVE
from fabula_generation.jobs.models import Job, JobEvent, JobStage


async def lock_user(session: AsyncSession, user_id: str) -> None:
    """Serialise this transaction with the user's other submits (until commit)."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"generation.jobs:{user_id}"},
    )


async def count_active(session: AsyncSession, user_id: str) -> int:
    return await session.scalar(
        select(func.count()).select_from(Job).where(Job.user_id == user_id, Job.status.in_(ACTIVE))
    )


async def by_idempotency_key(session: AsyncSession, user_id: str, key: str) -> Job | None:
    return await session.scalar(
        select(Job).where(Job.user_id == user_id, Job.idempotency_key == key)
    )


async def get(session: AsyncSession, job_id: uuid.UUID, *, for_update: bool = False) -> Job | None:
    query = select(Job).where(Job.id == job_id).execution_options(populate_existing=True)
    if for_update:
        query = query.with_for_update()
    return await session.scalar(query)


async def add_event(
    session: AsyncSession,
    job: Job,
    type_: str,
    *,
    stage: str | None = None,
    text_: str | None = None,
) -> int:
    """Append an event (the job's row is locked or new in this transaction)."""
    job.last_sequence += 1
    session.add(
        JobEvent(
            job_id=job.id,
            sequence=job.last_sequence,
            type=type_,
            stage=stage,
            text=text_,
            progress=job.progress,
        )
    )
    return job.last_sequence


async def list_jobs(
    session: AsyncSession,
    user_id: str,
    project_id: str,
    status: str | None,
    limit: int,
    after: tuple[dt.datetime, str] | None,
) -> list[Job]:
    conditions = [Job.user_id == user_id]
    if project_id:
        conditions.append(Job.project_id == project_id)
    if status:
        conditions.append(Job.status == status)
    if after is not None:
        moment, key = after
        conditions.append(
            or_(Job.created_at < moment, and_(Job.created_at == moment, Job.id < uuid.UUID(key)))
        )
    rows = await session.scalars(
        select(Job).where(*conditions).order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
    )
    return list(rows)


async def completed_stages(session: AsyncSession, job_id: uuid.UUID) -> dict[str, str]:
    rows = await session.execute(
        select(JobStage.name, JobStage.output)
        .where(JobStage.job_id == job_id)
        .order_by(JobStage.position)
    )
    return {name: output for name, output in rows}


async def drop_stages_from(session: AsyncSession, job_id: uuid.UUID, position: int) -> None:
    from sqlalchemy import delete

    await session.execute(
        delete(JobStage).where(JobStage.job_id == job_id, JobStage.position >= position)
    )


async def add_stage(session: AsyncSession, values: dict[str, Any]) -> bool:
    inserted = await session.scalar(
        insert(JobStage)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[JobStage.job_id, JobStage.name])
        .returning(JobStage.id)
    )
    return inserted is not None


async def claim(session: AsyncSession, worker: str, lease_seconds: float) -> Job | None:
    """Take the oldest job waiting, or running under a lease that ran out (its
    worker died): skipped while another worker's transaction holds it."""
    due = (
        select(Job.id)
        .where(
            or_(
                Job.status == "queued",
                and_(Job.status == "running", Job.lease_until < func.now()),
            )
        )
        .order_by(Job.created_at)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    return await session.scalar(
        update(Job)
        .where(Job.id == due.scalar_subquery())
        .values(
            status="running",
            worker=worker,
            lease_until=func.now() + dt.timedelta(seconds=lease_seconds),
            started_at=func.coalesce(Job.started_at, func.now()),
        )
        .returning(Job)
        .execution_options(synchronize_session=False, populate_existing=True)
    )


async def renew_lease(
    session: AsyncSession, job_id: uuid.UUID, worker: str, lease_seconds: float
) -> bool | None:
    """Extend the lease; its cancel_requested, or None when the job is no
    longer this worker's (taken over, or ended)."""
    return await session.scalar(
        update(Job)
        .where(Job.id == job_id, Job.worker == worker, Job.status == "running")
        .values(lease_until=func.now() + dt.timedelta(seconds=lease_seconds))
        .returning(Job.cancel_requested)
        .execution_options(synchronize_session=False)
    )


async def cancel_requested(session: AsyncSession, job_id: uuid.UUID, worker: str) -> bool | None:
    """Whether a cancel was asked; None when the job is no longer this worker's."""
    row = await session.execute(
        select(Job.cancel_requested, Job.worker, Job.status).where(Job.id == job_id)
    )
    found = row.first()
    if found is None or found.worker != worker or found.status != "running":
        return None
    return found.cancel_requested


async def own(session: AsyncSession, job_id: uuid.UUID, worker: str) -> Job | None:
    """The job, locked, while this worker holds it."""
    job = await get(session, job_id, for_update=True)
    if job is None or job.worker != worker or job.status != "running":
        return None
    return job


async def spent(session: AsyncSession, job_id: uuid.UUID) -> tuple[Decimal, int]:
    """(cost, tokens) of every model call of the job so far, as recorded."""
    row = (
        await session.execute(
            select(
                func.coalesce(func.sum(Generation.cost_usd), 0),
                func.coalesce(func.sum(Generation.prompt_tokens + Generation.completion_tokens), 0),
            ).where(Generation.subject_kind == "job", Generation.subject_id == str(job_id))
        )
    ).one()
    return Decimal(row[0]), int(row[1])


async def events_after(
    session: AsyncSession, job_id: uuid.UUID, after: int, limit: int = 500
) -> list[JobEvent]:
    rows = await session.scalars(
        select(JobEvent)
        .where(JobEvent.job_id == job_id, JobEvent.sequence > after)
        .order_by(JobEvent.sequence)
        .limit(limit)
    )
    return list(rows)


async def active_ids(session: AsyncSession, ids: list[str]) -> tuple[set[str], set[str]]:
    """Of these ids (job ids or their holds' reservation ids): (those of jobs
    queued or running, those of jobs that ended)."""
    uuids = []
    for value in ids:
        try:
            uuids.append(uuid.UUID(value))
        except ValueError:
            pass
    rows = await session.execute(
        select(Job.id, Job.reservation_id, Job.status).where(
            or_(Job.id.in_(uuids), Job.reservation_id.in_(ids))
        )
    )
    asked = set(ids)
    active: set[str] = set()
    ended: set[str] = set()
    for job_id, reservation_id, status in rows:
        for key in {str(job_id), reservation_id} & asked:
            (active if status in ACTIVE else ended).add(key)
    return active, ended
