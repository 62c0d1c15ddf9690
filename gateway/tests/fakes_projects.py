"""Fakes of stories' ProjectsService and generation's JobsService for the
gateway's tests: canned answers derived from the request, every call recorded
(fakes.Recorder). One project (PROJECT_ID) and one narrative (NARRATIVE_ID)
exist, for the user who asks; one job's events are scripted (JOB_EVENTS)."""

from __future__ import annotations

import asyncio

from fabula.common.v1.money_pb2 import Money
from fabula.generation.v1 import jobs_pb2, jobs_pb2_grpc
from fabula.stories.v1 import projects_pb2, projects_pb2_grpc, stories_pb2
from google.protobuf import empty_pb2

PROJECT_ID = "0c9b8a7f-6e5d-4c3b-a291-8f7e6d5c4b3a"
NARRATIVE_ID = "5e4d3c2b-1a09-4f8e-b7d6-c5b4a3928170"
JOB_ID = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
NARRATIVE_TEXT = "## The Harbour\n\nThe ferry left at dawn.\n"
STAGES = ["outline", "draft-1", "draft-2", "draft-3", "revise", "measure"]


def usd(units: int, nanos: int) -> Money:
    return Money(currency_code="USD", units=units, nanos=nanos)


def _timestamp():
    from .fakes import CREATED_AT, timestamp

    return timestamp(CREATED_AT)


def project(user_id: str, **fields) -> projects_pb2.Project:
    values = {
        "id": PROJECT_ID,
        "user_id": user_id,
        "name": "Harbour tales",
        "default_genre": "mystery",
        "default_production_type": jobs_pb2.PRODUCTION_TYPE_SHORT_STORY,
        "world_notes": "The ferry runs at dawn only.",
        "narrative_count": 2,
        "total_word_count": 6100,
        "total_cost": usd(0, 25_000_000),
        "created_at": _timestamp(),
        "updated_at": _timestamp(),
        **fields,
    }
    return projects_pb2.Project(**values)


def narrative(user_id: str, **fields) -> projects_pb2.Narrative:
    values = {
        "id": NARRATIVE_ID,
        "project_id": PROJECT_ID,
        "user_id": user_id,
        "job_id": JOB_ID,
        "root_narrative_id": NARRATIVE_ID,
        "version": 1,
        "title": "The Silent Ferry",
        "production_type": jobs_pb2.PRODUCTION_TYPE_SHORT_STORY,
        "genre": "mystery",
        "text": NARRATIVE_TEXT,
        "word_count": 3050,
        "quality_metrics": {"readability": 64.5},
        "overall_quality_score": 0.72,
        "generation_cost": usd(0, 12_500_000),
        "tokens_used": 4200,
        "view_count": 3,
        "export_formats": ["md"],
        "created_at": _timestamp(),
        **fields,
    }
    return projects_pb2.Narrative(**values)


def job(request_user: str, status: int = jobs_pb2.JOB_STATUS_QUEUED, **fields) -> jobs_pb2.Job:
    values = {
        "id": JOB_ID,
        "user_id": request_user,
        "project_id": PROJECT_ID,
        "status": status,
        "brief": jobs_pb2.ProductionBrief(
            production_type=jobs_pb2.PRODUCTION_TYPE_SHORT_STORY, genre="mystery", premise="A ferry"
        ),
        "stages": STAGES,
        "estimated_cost": usd(0, 40_000_000),
        "estimated_generations": 6,
        "created_at": _timestamp(),
        **fields,
    }
    return jobs_pb2.Job(**values)


def job_events(user_id: str) -> list[jobs_pb2.JobEvent]:
    """The scripted job's whole history: queued, a stage, text, done."""
    kinds = [
        (jobs_pb2.JOB_EVENT_TYPE_QUEUED, "", ""),
        (jobs_pb2.JOB_EVENT_TYPE_STAGE_STARTED, "outline", ""),
        (jobs_pb2.JOB_EVENT_TYPE_TEXT, "outline", "Title: The Silent Ferry"),
        (jobs_pb2.JOB_EVENT_TYPE_STAGE_FINISHED, "outline", ""),
        (jobs_pb2.JOB_EVENT_TYPE_PROGRESS, "draft-1", ""),
        (jobs_pb2.JOB_EVENT_TYPE_DONE, "", ""),
    ]
    events = []
    for sequence, (kind, stage, text) in enumerate(kinds, start=1):
        event = jobs_pb2.JobEvent(
            sequence=sequence,
            type=kind,
            stage=stage,
            text=text,
            progress_percentage=100.0 * sequence / len(kinds),
            occurred_at=_timestamp(),
        )
        if kind == jobs_pb2.JOB_EVENT_TYPE_DONE:
            event.job.CopyFrom(job(user_id, jobs_pb2.JOB_STATUS_COMPLETED))
        events.append(event)
    return events


class FakeProjects(projects_pb2_grpc.ProjectsServiceServicer):
    def __init__(self, recorder) -> None:
        self.recorder = recorder

    async def CreateProject(self, request, context):
        await self.recorder.receive("CreateProject", request, context)
        return project(
            request.user_id,
            name=request.name,
            description=request.description,
            default_genre=request.default_genre,
            default_production_type=request.default_production_type,
            world_notes=request.world_notes,
            narrative_count=0,
            total_word_count=0,
            total_cost=usd(0, 0),
        )

    async def GetProject(self, request, context):
        await self.recorder.receive("GetProject", request, context)
        return project(request.user_id)

    async def ListProjects(self, request, context):
        await self.recorder.receive("ListProjects", request, context)
        return projects_pb2.ListProjectsResponse(
            # The page its own cursor leads to is the last.
            items=[project(request.user_id)],
            next_cursor="" if request.cursor == "next-page" else "next-page",
        )

    async def UpdateProject(self, request, context):
        await self.recorder.receive("UpdateProject", request, context)
        return project(request.user_id, name=request.name or "Harbour tales")

    async def DeleteProject(self, request, context):
        await self.recorder.receive("DeleteProject", request, context)
        return empty_pb2.Empty()

    async def ListNarratives(self, request, context):
        await self.recorder.receive("ListNarratives", request, context)
        return projects_pb2.ListNarrativesResponse(items=[narrative(request.user_id, text="")])

    async def GetNarrative(self, request, context):
        await self.recorder.receive("GetNarrative", request, context)
        return narrative(request.user_id)

    async def ListNarrativeVersions(self, request, context):
        await self.recorder.receive("ListNarrativeVersions", request, context)
        second = narrative(
            request.user_id,
            id="7f6e5d4c-3b2a-4190-8f7e-6d5c4b3a2910",
            version=2,
            parent_narrative_id=NARRATIVE_ID,
            text="",
        )
        return projects_pb2.ListNarrativeVersionsResponse(
            versions=[narrative(request.user_id, text=""), second]
        )

    async def ExportNarrative(self, request, context):
        await self.recorder.receive("ExportNarrative", request, context)
        data = f"# The Silent Ferry\n\nby {request.author_name}\n".encode()
        yield stories_pb2.ExportChunk(
            header=stories_pb2.ExportHeader(
                filename="the-silent-ferry.md",
                content_type="text/markdown; charset=utf-8",
                size_bytes=len(data),
            )
        )
        yield stories_pb2.ExportChunk(data=data)


class FakeJobs(jobs_pb2_grpc.JobsServiceServicer):
    def __init__(self, recorder) -> None:
        self.recorder = recorder
        # Seconds WatchJob waits before its events after the first (a quiet stage).
        self.quiet_seconds = 0.0

    async def SubmitJob(self, request, context):
        await self.recorder.receive("SubmitJob", request, context)
        return job(
            request.user_id,
            brief=request.brief,
            parent_narrative_id=request.revision.parent_narrative_id,
        )

    async def GetJob(self, request, context):
        await self.recorder.receive("GetJob", request, context)
        return job(request.user_id, jobs_pb2.JOB_STATUS_RUNNING, current_stage="draft-1")

    async def ListJobs(self, request, context):
        await self.recorder.receive("ListJobs", request, context)
        return jobs_pb2.ListJobsResponse(items=[job(request.user_id)])

    async def CancelJob(self, request, context):
        await self.recorder.receive("CancelJob", request, context)
        return job(request.user_id, jobs_pb2.JOB_STATUS_CANCELLED, can_resume=True)

    async def RetryJob(self, request, context):
        await self.recorder.receive("RetryJob", request, context)
        return job(request.user_id, jobs_pb2.JOB_STATUS_QUEUED, retry_count=1)

    async def WatchJob(self, request, context):
        await self.recorder.receive("WatchJob", request, context)
        for index, event in enumerate(job_events(request.user_id)):
            if event.sequence <= request.after_sequence:
                continue
            if index and self.quiet_seconds:
                await asyncio.sleep(self.quiet_seconds)
            yield event
