"""The JobCompleted consumer: a completed generation job's narrative, stored
once per job, with its project's totals, in the transaction of the event's
inbox row. Stories never asks generation for jobs; what a job wrote arrives
here, so nothing is lost while stories is down (JetStream keeps the event)."""

from __future__ import annotations

import logging
import uuid

from fabula.generation.v1 import events_pb2 as generation_events
from fabula_common.errors import InvalidArgument
from fabula_common.money import from_money
from fabula_common.tombstones import is_deleted
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_stories.database import deleted_users
from fabula_stories.projects import repository
from fabula_stories.projects.mapping import production_type_name
from fabula_stories.stories.models import GENRE_MAX_LENGTH, TITLE_MAX_LENGTH

log = logging.getLogger(__name__)

UNTITLED = "Untitled"


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def record_narrative(
    session: AsyncSession, event: generation_events.JobCompleted
) -> None:
    """Store the job's narrative: version 1 of a new lineage, or (for a
    revision) the next version of its parent's lineage. Idempotent per job
    (a redelivery, or the same job under another event id, stores nothing)."""
    job_id, user_id, project_id = (
        _uuid(event.job_id), _uuid(event.user_id), _uuid(event.project_id)
    )
    if job_id is None or user_id is None or project_id is None:
        log.error(
            "job-completed event %s dropped: job %r, user %r or project %r is not a UUID",
            event.event_id, event.job_id, event.user_id, event.project_id,
        )
        return
    # Shared with the user's deletion lock: a deletion either ran before (and
    # this sees its tombstone) or waits for this commit (and deletes it).
    if await is_deleted(session, deleted_users, user_id):
        log.info("job %s completed for deleted user %s: narrative dropped", job_id, user_id)
        return
    # Locked: versions of one lineage and the totals are computed one at a time.
    project = await repository.get_project(session, user_id, project_id, for_update=True)
    if project is None:
        log.info("job %s completed for project %s, which is gone: narrative dropped",
                 job_id, project_id)
        return
    try:
        production_type = production_type_name(event.production_type)
        cost = from_money(event.cost, field="cost")
    except InvalidArgument as exc:
        log.error("job-completed event %s dropped: %s", event.event_id, exc)
        return

    narrative_id = uuid.uuid4()
    parent_id, root_id, version = None, narrative_id, 1
    if event.parent_narrative_id:
        parent = await repository.get_narrative(
            session, user_id, _uuid(event.parent_narrative_id) or uuid.UUID(int=0)
        )
        if parent is not None and parent.project_id == project_id:
            # Next of the lineage (two revisions of one parent get distinct versions).
            parent_id, root_id = parent.id, parent.root_narrative_id
            version = await repository.newest_version(session, root_id) + 1
        else:
            log.warning(
                "job %s revised narrative %s, which is not in project %s: stored as version 1",
                job_id, event.parent_narrative_id, project_id,
            )

    stored = await repository.insert_narrative(
        session,
        {
            "id": narrative_id,
            "project_id": project_id,
            "user_id": user_id,
            "job_id": job_id,
            "parent_narrative_id": parent_id,
            "root_narrative_id": root_id,
            "version": version,
            "title": (event.title.strip() or UNTITLED)[:TITLE_MAX_LENGTH],
            "production_type": production_type,
            "genre": event.genre[:GENRE_MAX_LENGTH],
            "text": event.text.replace("\x00", ""),
            "word_count": max(event.word_count, 0),
            "quality_metrics": dict(event.quality_metrics),
            "overall_quality_score": event.overall_quality_score,
            "cost_usd": cost,
            "tokens_used": max(event.tokens_used, 0),
        },
    )
    if not stored:
        log.info("job %s: narrative already stored", job_id)
        return
    await repository.add_to_project_totals(session, project_id, max(event.word_count, 0), cost)
    log.info("job %s: narrative %s stored (version %d) in project %s",
             job_id, narrative_id, version, project_id)
