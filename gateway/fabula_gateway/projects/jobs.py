"""Generation jobs (generation's JobsService): read, list, cancel, retry, and
their events as Server-Sent Events.

The event stream is resumable: each event's SSE `id` is its sequence in the
job, and a client reconnecting with `Last-Event-ID` (or `?after=`) gets every
event after it, none lost and none repeated. The job is looked up before the
200 so an unknown job is a real 404; errors after that travel as an `error`
event. A comment line every KEEP_ALIVE_SECONDS keeps proxies from closing a
quiet stream (a stage may write nothing for a while). The stream ends after
the terminal event (`done`, `failed` or `cancelled`), at the gateway's
shutdown (with a 503 `error` event: reconnect), or when its deadline passes
(plainly: an EventSource reconnects by itself with Last-Event-ID).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Annotated

import grpc
from fabula.generation.v1 import jobs_pb2
from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request
from fastapi.sse import format_sse_event
from starlette.responses import StreamingResponse

from fabula_gateway.dependencies import Clients, CurrentUserId, JsonBody
from fabula_gateway.openapi import problem_responses
from fabula_gateway.problems import (
    SERVICE_UNAVAILABLE,
    ProblemError,
    problem_for_rpc_error,
    retry_after,
)
from fabula_gateway.projects.mappers import (
    JOB_STATUSES,
    event_type_name,
    job_event_from_proto,
    job_from_proto,
)
from fabula_gateway.projects.routes import Cursor, Limit, parse_uuid
from fabula_gateway.projects.schemas import Job, JobPage, JobStatus, RetryRequest
from fabula_gateway.stories.streaming import EVENT_STREAM, error_event

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

KEEP_ALIVE_SECONDS = 15.0
# The longest one stream is held open; the client then reconnects with Last-Event-ID.
WATCH_DEADLINE_SECONDS = 1800.0
TERMINAL_EVENTS = frozenset({"done", "failed", "cancelled"})

_S409_CANCEL = "The job is completed: there is nothing to cancel."
_S409_RETRY = "The job is queued, running or completed: only a failed or cancelled job is retried."
_SSE_EXAMPLE = (
    'id: 1\nevent: queued\ndata: {"sequence": 1, "type": "queued", ...}\n\n'
    'id: 2\nevent: stage_started\ndata: {"sequence": 2, "type": "stage_started", '
    '"stage": "outline", ...}\n\n'
    ": keep-alive\n\n"
    'id: 3\nevent: text\ndata: {"sequence": 3, "type": "text", "stage": "draft-1", '
    '"text": "The ferry left at dawn.", ...}\n\n'
)


async def _job_id(job_id: Annotated[str, Path(description="The job's id (a UUID).")]) -> str:
    return parse_uuid(job_id, "Job")


JobId = Annotated[str, Depends(_job_id)]


@router.get(
    "/{job_id}",
    operation_id="get_job",
    response_model=Job,
    summary="Get a job",
    description="Its status, stages, progress, tokens and cost so far.",
    responses=problem_responses(401, 404, 500, 503),
)
async def get_job(user_id: CurrentUserId, job_id: JobId, clients: Clients) -> Job:
    return job_from_proto(await clients.jobs.GetJob(jobs_pb2.JobRef(user_id=user_id, job_id=job_id)))


@router.get(
    "",
    operation_id="list_jobs",
    response_model=JobPage,
    summary="List jobs",
    description="Newest first, a page at a time; of one project and/or in one status when "
    "asked.",
    responses=problem_responses(401, 422, 500, 503),
)
async def list_jobs(
    user_id: CurrentUserId,
    clients: Clients,
    project_id: Annotated[str | None, Query(description="Only this project's jobs.")] = None,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status.")] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> JobPage:
    if project_id is not None:
        try:
            project_id = parse_uuid(project_id, "Project")
        except ProblemError:
            # An id no project has: no jobs.
            return JobPage(items=[], next_cursor=None)
    page = await clients.jobs.ListJobs(
        jobs_pb2.ListJobsRequest(
            user_id=user_id,
            project_id=project_id or "",
            status=JOB_STATUSES[status] if status else jobs_pb2.JOB_STATUS_UNSPECIFIED,
            limit=limit,
            cursor=cursor or "",
        )
    )
    return JobPage(
        items=[job_from_proto(job) for job in page.items], next_cursor=page.next_cursor or None
    )


@router.post(
    "/{job_id}/cancel",
    operation_id="cancel_job",
    response_model=Job,
    summary="Cancel a job",
    description="Stops the job: the model call in flight is stopped within seconds, only "
    "what was used is billed and the rest of the reservation is given back. Cancelling a "
    "cancelled job answers it as it is.",
    responses=problem_responses(401, 404, 409, 500, 503, s409=_S409_CANCEL),
)
async def cancel_job(user_id: CurrentUserId, job_id: JobId, clients: Clients) -> Job:
    return job_from_proto(
        await clients.jobs.CancelJob(jobs_pb2.JobRef(user_id=user_id, job_id=job_id))
    )


@router.post(
    "/{job_id}/retry",
    operation_id="retry_job",
    response_model=Job,
    summary="Retry a job",
    description="Queues a failed or cancelled job again, from `from_stage` or from its "
    "first unfinished stage; the stages before keep their output and are not paid again.",
    responses=problem_responses(401, 402, 404, 409, 413, 415, 422, 500, 503, s409=_S409_RETRY),
)
async def retry_job(
    _json: JsonBody,
    user_id: CurrentUserId,
    job_id: JobId,
    clients: Clients,
    body: Annotated[RetryRequest | None, Body()] = None,
) -> Job:
    return job_from_proto(
        await clients.jobs.RetryJob(
            jobs_pb2.RetryJobRequest(
                user_id=user_id,
                job_id=job_id,
                from_stage=(body.from_stage if body and body.from_stage else ""),
            )
        )
    )


def _last_sequence(last_event_id: str | None, after: int | None) -> int:
    """Where the stream resumes: Last-Event-ID (what an EventSource sends on
    reconnecting) wins over `after`; an id this stream never sent starts over."""
    if last_event_id is not None:
        value = last_event_id.strip()
        return int(value) if value.isdigit() else 0
    return after or 0


@router.get(
    "/{job_id}/events",
    operation_id="watch_job",
    response_class=StreamingResponse,
    summary="Watch a job's events",
    description="Server-Sent Events: `queued`, `stage_started`, `stage_finished`, "
    "`progress`, `text` (as the model writes), then one of `done`, `failed`, `cancelled`, "
    "after which the stream ends. Each event's `id` is its sequence; reconnect with "
    "`Last-Event-ID` (or `?after=`) to miss nothing. Comment lines keep a quiet stream "
    "open. An error after the stream started arrives as an `error` event (a problem "
    "document).",
    responses={
        200: {"content": {EVENT_STREAM: {"schema": {"type": "string"}, "example": _SSE_EXAMPLE}}},
        **problem_responses(401, 404, 422, 500, 503),
    },
)
async def watch_job(
    request: Request,
    user_id: CurrentUserId,
    job_id: JobId,
    clients: Clients,
    after: Annotated[
        int | None, Query(ge=0, description="The last sequence already seen (0: from the start).")
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", description="Sent by EventSource when reconnecting."),
    ] = None,
) -> StreamingResponse:
    after_sequence = _last_sequence(last_event_id, after)
    # An unknown (or another user's) job is a 404, not an event in a 200.
    await clients.jobs.GetJob(jobs_pb2.JobRef(user_id=user_id, job_id=job_id))
    call = clients.jobs.WatchJob(
        jobs_pb2.WatchJobRequest(user_id=user_id, job_id=job_id, after_sequence=after_sequence),
        timeout=WATCH_DEADLINE_SECONDS,
    )
    return StreamingResponse(
        _job_sse(call, request.app.state.streams_must_end),
        media_type=EVENT_STREAM,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _job_sse(call: grpc.aio.UnaryStreamCall, must_end: asyncio.Event) -> AsyncIterator[bytes]:
    events = aiter(call)
    ending = asyncio.ensure_future(must_end.wait())
    reading: asyncio.Future | None = None
    try:
        while True:
            if reading is None:
                reading = asyncio.ensure_future(anext(events, None))
            done, _ = await asyncio.wait(
                (reading, ending), timeout=KEEP_ALIVE_SECONDS, return_when=asyncio.FIRST_COMPLETED
            )
            if reading in done:
                event, reading = reading.result(), None
                if event is None:
                    return
                name = event_type_name(event.type)
                if name is None:
                    continue  # a kind this gateway does not know yet
                yield format_sse_event(
                    id=str(event.sequence),
                    event=name,
                    data_str=job_event_from_proto(event, name).model_dump_json(),
                )
                if name in TERMINAL_EVENTS:
                    return
            elif ending.done():
                yield error_event(
                    ProblemError(
                        SERVICE_UNAVAILABLE,
                        "The gateway is shutting down; reconnect with Last-Event-ID.",
                        headers=retry_after(None),
                    )
                )
                return
            else:
                yield format_sse_event(comment="keep-alive")
    except grpc.aio.AioRpcError as err:
        if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return  # held long enough: the client reconnects with Last-Event-ID
        log.warning("job event stream failed: %s %s", err.code().name, err.details())
        if err.code() == grpc.StatusCode.CANCELLED:
            # Not by us: the generation service going away.
            yield error_event(ProblemError(SERVICE_UNAVAILABLE, headers=retry_after(None)))
        else:
            yield error_event(problem_for_rpc_error(err))
    finally:
        if reading is not None:
            reading.cancel()
        ending.cancel()
        call.cancel()  # A no-op once finished; frees the call when the client left.
