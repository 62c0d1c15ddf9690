"""gRPC edge of fabula.generation.v1.JobsService: proto <-> domain."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import grpc
from fabula.generation.v1 import jobs_pb2, jobs_pb2_grpc
from fabula_common.db import utcnow
from fabula_common.errors import InvalidArgument
from fabula_common.money import to_money
from fabula_common.pagination import decode_cursor, encode_cursor, page_limit

from fabula_generation.jobs.domain import Brief, EventType, Revision, Status
from fabula_generation.jobs.models import Job, JobEvent
from fabula_generation.jobs.service import JobsService

_STATUSES = {
    Status.queued.value: jobs_pb2.JOB_STATUS_QUEUED,
    Status.running.value: jobs_pb2.JOB_STATUS_RUNNING,
    Status.completed.value: jobs_pb2.JOB_STATUS_COMPLETED,
    Status.failed.value: jobs_pb2.JOB_STATUS_FAILED,
    Status.cancelled.value: jobs_pb2.JOB_STATUS_CANCELLED,
}
_STATUS_NAMES = {number: name for name, number in _STATUSES.items()}
_EVENTS = {
    EventType.queued.value: jobs_pb2.JOB_EVENT_TYPE_QUEUED,
    EventType.stage_started.value: jobs_pb2.JOB_EVENT_TYPE_STAGE_STARTED,
    EventType.stage_finished.value: jobs_pb2.JOB_EVENT_TYPE_STAGE_FINISHED,
    EventType.progress.value: jobs_pb2.JOB_EVENT_TYPE_PROGRESS,
    EventType.text.value: jobs_pb2.JOB_EVENT_TYPE_TEXT,
    EventType.done.value: jobs_pb2.JOB_EVENT_TYPE_DONE,
    EventType.failed.value: jobs_pb2.JOB_EVENT_TYPE_FAILED,
    EventType.cancelled.value: jobs_pb2.JOB_EVENT_TYPE_CANCELLED,
}


def production_type_name(value: int) -> str:
    if value == jobs_pb2.PRODUCTION_TYPE_UNSPECIFIED:
        return ""
    try:
        return jobs_pb2.ProductionType.Name(value).removeprefix("PRODUCTION_TYPE_").lower()
    except ValueError:
        return ""


def brief_from_proto(message: jobs_pb2.ProductionBrief) -> Brief:
    return Brief(
        production_type=production_type_name(message.production_type),
        genre=message.genre,
        premise=message.premise,
        characters=tuple(message.characters),
        setting=message.setting,
        tone=message.tone,
        target_words=message.target_words,
        world_notes=message.world_notes,
        locale=message.locale,
    )


def brief_to_proto(values: dict) -> jobs_pb2.ProductionBrief:
    return jobs_pb2.ProductionBrief(
        production_type=jobs_pb2.ProductionType.Value(
            "PRODUCTION_TYPE_" + values["production_type"].upper()
        ),
        genre=values.get("genre", ""),
        premise=values.get("premise", ""),
        characters=values.get("characters", []),
        setting=values.get("setting", ""),
        tone=values.get("tone", ""),
        target_words=values.get("target_words", 0),
        world_notes=values.get("world_notes", ""),
        locale=values.get("locale", "en"),
    )


def job_to_proto(job: Job, completed: list[str]) -> jobs_pb2.Job:
    done = set(completed)
    message = jobs_pb2.Job(
        id=str(job.id),
        user_id=job.user_id,
        project_id=job.project_id,
        status=_STATUSES[job.status],
        brief=brief_to_proto(job.brief),
        parent_narrative_id=job.parent_narrative_id or "",
        current_stage=(job.current_stage or "")
        if job.status in (Status.running.value, Status.failed.value)
        else "",
        completed_stages=[stage for stage in job.stages if stage in done],
        stages=list(job.stages),
        progress_percentage=job.progress,
        tokens_used=job.tokens_used,
        estimated_cost=to_money(job.estimated_cost_usd),
        estimated_generations=job.estimated_generations,
        actual_cost=to_money(job.actual_cost_usd),
        error_message=job.error_message or "",
        retry_count=job.retry_count,
        can_resume=job.status in (Status.failed.value, Status.cancelled.value),
    )
    message.created_at.FromDatetime(job.created_at)
    if job.started_at is not None:
        message.started_at.FromDatetime(job.started_at)
        message.duration_seconds = ((job.completed_at or utcnow()) - job.started_at).total_seconds()
    if job.completed_at is not None:
        message.completed_at.FromDatetime(job.completed_at)
    return message


def event_to_proto(event: JobEvent, job: Job | None, completed: list[str]) -> jobs_pb2.JobEvent:
    message = jobs_pb2.JobEvent(
        sequence=event.sequence,
        type=_EVENTS[event.type],
        stage=event.stage or "",
        progress_percentage=event.progress,
        text=event.text or "",
    )
    if job is not None:
        message.job.CopyFrom(job_to_proto(job, completed))
    message.occurred_at.FromDatetime(event.created_at)
    return message


def request_hash(message: jobs_pb2.SubmitJobRequest) -> str:
    """What makes two submits with one idempotency key the same request."""
    return hashlib.sha256(message.SerializeToString(deterministic=True)).hexdigest()


class JobsServicer(jobs_pb2_grpc.JobsServiceServicer):
    def __init__(self, jobs: JobsService) -> None:
        self.jobs = jobs

    async def SubmitJob(self, request: jobs_pb2.SubmitJobRequest, context) -> jobs_pb2.Job:
        revision = None
        if request.HasField("revision"):
            r = request.revision
            revision = Revision(
                parent_narrative_id=r.parent_narrative_id,
                parent_title=r.parent_title,
                parent_text=r.parent_text,
                instructions=r.instructions,
                locked_sections=tuple(sorted(set(r.locked_sections))),
            )
        job = await self.jobs.submit(
            request.user_id,
            request.project_id,
            brief_from_proto(request.brief),
            revision,
            request.idempotency_key,
            request_hash(request),
        )
        return job_to_proto(job, [])

    async def GetJob(self, request: jobs_pb2.JobRef, context) -> jobs_pb2.Job:
        return job_to_proto(*await self.jobs.get(request.user_id, request.job_id))

    async def ListJobs(self, request: jobs_pb2.ListJobsRequest, context) -> jobs_pb2.ListJobsResponse:
        limit = page_limit(request.limit)
        status = None
        if request.status != jobs_pb2.JOB_STATUS_UNSPECIFIED:
            status = _STATUS_NAMES.get(request.status)
            if status is None:
                raise InvalidArgument("status is not a job status")
        after = decode_cursor(request.cursor)
        page = await self.jobs.list(
            request.user_id, request.project_id, status, limit + 1, after
        )
        items = page[:limit]
        next_cursor = ""
        if len(page) > limit:
            last = items[-1][0]
            next_cursor = encode_cursor(last.created_at, str(last.id))
        return jobs_pb2.ListJobsResponse(
            items=[job_to_proto(job, done) for job, done in items], next_cursor=next_cursor
        )

    async def CancelJob(self, request: jobs_pb2.JobRef, context) -> jobs_pb2.Job:
        return job_to_proto(*await self.jobs.cancel(request.user_id, request.job_id))

    async def RetryJob(self, request: jobs_pb2.RetryJobRequest, context) -> jobs_pb2.Job:
        return job_to_proto(
            *await self.jobs.retry(request.user_id, request.job_id, request.from_stage)
        )

    async def WatchJob(
        self, request: jobs_pb2.WatchJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[jobs_pb2.JobEvent]:
        # The caller's deadline or cancellation cancels this generator (grpc.aio).
        async for event, job, done in self.jobs.watch(
            request.user_id, request.job_id, request.after_sequence
        ):
            yield event_to_proto(event, job, done)
