"""Projects, jobs and narratives from their gRPC messages, and back."""

from __future__ import annotations

from typing import get_args

from fabula.generation.v1 import jobs_pb2
from fabula.common.v1.money_pb2 import Money
from fabula.stories.v1 import projects_pb2

from fabula_gateway.billing.mappers import usd as billing_usd
from fabula_gateway.mappers import to_datetime
from fabula_gateway.projects.schemas import (
    Job,
    JobEvent,
    JobEventType,
    JobStatus,
    Narrative,
    NarrativeSummary,
    Project,
    ProductionType,
)

PRODUCTION_TYPES: dict[str, int] = {
    name: jobs_pb2.ProductionType.Value(f"PRODUCTION_TYPE_{name.upper()}")
    for name in get_args(ProductionType)
}
_PRODUCTION_TYPE_NAMES = {value: name for name, value in PRODUCTION_TYPES.items()}
JOB_STATUSES: dict[str, int] = {
    name: jobs_pb2.JobStatus.Value(f"JOB_STATUS_{name.upper()}") for name in get_args(JobStatus)
}
_JOB_STATUS_NAMES = {value: name for name, value in JOB_STATUSES.items()}
_EVENT_TYPE_NAMES = {
    jobs_pb2.JobEventType.Value(f"JOB_EVENT_TYPE_{name.upper()}"): name
    for name in get_args(JobEventType)
}


def usd(money: Money, field: str) -> str:
    """As billing's `usd`; an amount never set (no currency, zero) is "0"."""
    if not money.currency_code and not money.units and not money.nanos:
        return "0"
    return billing_usd(money, field)


def production_type_name(value: int) -> ProductionType | None:
    return _PRODUCTION_TYPE_NAMES.get(value)


def event_type_name(value: int) -> JobEventType | None:
    """None for a type this gateway does not know (a newer generation's): skipped."""
    return _EVENT_TYPE_NAMES.get(value)


def project_from_proto(project: projects_pb2.Project) -> Project:
    return Project(
        id=project.id,
        name=project.name,
        description=project.description,
        default_genre=project.default_genre,
        default_production_type=production_type_name(project.default_production_type),
        world_notes=project.world_notes,
        narrative_count=project.narrative_count,
        total_word_count=project.total_word_count,
        total_cost_usd=usd(project.total_cost, "total_cost"),
        created_at=to_datetime(project.created_at),
        updated_at=to_datetime(project.updated_at),
    )


def job_from_proto(job: jobs_pb2.Job) -> Job:
    brief = job.brief
    return Job(
        id=job.id,
        project_id=job.project_id,
        status=_JOB_STATUS_NAMES.get(job.status, "queued"),
        production_type=production_type_name(brief.production_type),
        genre=brief.genre,
        premise=brief.premise,
        characters=list(brief.characters),
        setting=brief.setting,
        tone=brief.tone,
        target_words=brief.target_words or None,
        parent_narrative_id=job.parent_narrative_id or None,
        current_stage=job.current_stage or None,
        completed_stages=list(job.completed_stages),
        stages=list(job.stages),
        progress_percentage=job.progress_percentage,
        tokens_used=job.tokens_used,
        estimated_cost_usd=usd(job.estimated_cost, "estimated_cost"),
        estimated_generations=job.estimated_generations,
        actual_cost_usd=usd(job.actual_cost, "actual_cost"),
        created_at=to_datetime(job.created_at),
        started_at=to_datetime(job.started_at) if job.HasField("started_at") else None,
        completed_at=to_datetime(job.completed_at) if job.HasField("completed_at") else None,
        duration_seconds=job.duration_seconds,
        error_message=job.error_message or None,
        retry_count=job.retry_count,
        can_resume=job.can_resume,
    )


def job_event_from_proto(event: jobs_pb2.JobEvent, type_name: JobEventType) -> JobEvent:
    return JobEvent(
        sequence=event.sequence,
        type=type_name,
        stage=event.stage or None,
        progress_percentage=event.progress_percentage,
        text=event.text or None,
        job=job_from_proto(event.job) if event.HasField("job") else None,
        occurred_at=to_datetime(event.occurred_at),
    )


def _narrative_fields(narrative: projects_pb2.Narrative) -> dict:
    return {
        "id": narrative.id,
        "project_id": narrative.project_id,
        "job_id": narrative.job_id,
        "parent_narrative_id": narrative.parent_narrative_id or None,
        "root_narrative_id": narrative.root_narrative_id,
        "version": narrative.version,
        "title": narrative.title,
        "production_type": production_type_name(narrative.production_type),
        "genre": narrative.genre,
        "word_count": narrative.word_count,
        "quality_metrics": dict(narrative.quality_metrics),
        "overall_quality_score": narrative.overall_quality_score,
        "cost_usd": usd(narrative.generation_cost, "generation_cost"),
        "tokens_used": narrative.tokens_used,
        "view_count": narrative.view_count,
        "download_count": narrative.download_count,
        "export_formats": list(narrative.export_formats),
        "created_at": to_datetime(narrative.created_at),
    }


def narrative_summary_from_proto(narrative: projects_pb2.Narrative) -> NarrativeSummary:
    return NarrativeSummary(**_narrative_fields(narrative))


def narrative_from_proto(narrative: projects_pb2.Narrative) -> Narrative:
    return Narrative(**_narrative_fields(narrative), text=narrative.text)
