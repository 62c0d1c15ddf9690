"""Projects and their narratives (stories' ProjectsService), and the jobs
submitted into a project or revising a narrative (generation's JobsService)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fabula.generation.v1 import jobs_pb2
from fabula.stories.v1 import projects_pb2
from fastapi import APIRouter, Depends, Path, Query, Response, status
from starlette.responses import StreamingResponse

from fabula_gateway.clients import ServiceClients
from fabula_gateway.dependencies import Clients, CurrentUserId, JsonBody
from fabula_gateway.openapi import problem_responses
from fabula_gateway.problems import NOT_FOUND, VALIDATION_FAILED, FieldError, ProblemError
from fabula_gateway.projects.mappers import (
    PRODUCTION_TYPES,
    job_from_proto,
    narrative_from_proto,
    narrative_summary_from_proto,
    project_from_proto,
)
from fabula_gateway.projects.schemas import (
    Job,
    JobCreate,
    Narrative,
    NarrativePage,
    NarrativeVersions,
    Project,
    ProjectCreate,
    ProjectPage,
    ProjectUpdate,
    ReviseRequest,
)
from fabula_gateway.stories.exchange import (
    DEFAULT_AUTHOR,
    EXPORT_FORMATS,
    EXPORT_RESPONSES,
    ExportFormatQuery,
    author_name,
    file_response,
)
from fabula_gateway.stories.routes import IdempotencyKey

projects_router = APIRouter(prefix="/v1/projects", tags=["projects"])
narratives_router = APIRouter(prefix="/v1/narratives", tags=["projects"])

_S402_JOB = (
    "The plan cannot cover the job's estimated cost (or its generations quota is used up); "
    "the problem names the `plan`, the `quota` reached, its `limit` and when it `resets_at`."
)
_S409_JOB = (
    "The plan's number of queued and running jobs is reached (type "
    "`too-many-running-jobs`): submit again when one has ended; or the first request with "
    "this Idempotency-Key is still being processed (type `idempotency-key-in-progress`)."
)
Limit = Annotated[int, Query(ge=1, le=100, description="Page size (default 20).")]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page.")]


def parse_uuid(value: str, what: str) -> str:
    # Not a UUID means no such resource: 404 like any other unknown id, not 422.
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ProblemError(NOT_FOUND, f"{what} not found.") from None


async def _project_id(
    project_id: Annotated[str, Path(description="The project's id (a UUID).")],
) -> str:
    return parse_uuid(project_id, "Project")


async def _narrative_id(
    narrative_id: Annotated[str, Path(description="The narrative's id (a UUID).")],
) -> str:
    return parse_uuid(narrative_id, "Narrative")


ProjectId = Annotated[str, Depends(_project_id)]
NarrativeId = Annotated[str, Depends(_narrative_id)]


def job_location(job_id: str) -> str:
    return f"/v1/jobs/{job_id}"


# --- Projects ------------------------------------------------------------------


@projects_router.post(
    "",
    operation_id="create_project",
    status_code=status.HTTP_201_CREATED,
    response_model=Project,
    response_description="The new project; its URL is in Location.",
    summary="Create a project",
    description="A project holds the narratives of its jobs; its defaults fill what a brief "
    "leaves out.",
    responses=problem_responses(401, 413, 415, 422, 500, 503),
)
async def create_project(
    body: ProjectCreate, _json: JsonBody, user_id: CurrentUserId, clients: Clients,
    response: Response,
) -> Project:
    project = await clients.projects.CreateProject(
        projects_pb2.CreateProjectRequest(
            user_id=user_id,
            name=body.name,
            description=body.description,
            default_genre=body.default_genre,
            default_production_type=PRODUCTION_TYPES.get(body.default_production_type or "", 0),
            world_notes=body.world_notes,
        )
    )
    response.headers["Location"] = f"/v1/projects/{project.id}"
    return project_from_proto(project)


@projects_router.get(
    "",
    operation_id="list_projects",
    response_model=ProjectPage,
    summary="List projects",
    description="Newest first, a page at a time.",
    responses=problem_responses(401, 422, 500, 503),
)
async def list_projects(
    user_id: CurrentUserId, clients: Clients, limit: Limit = 20, cursor: Cursor = None
) -> ProjectPage:
    page = await clients.projects.ListProjects(
        projects_pb2.ListProjectsRequest(user_id=user_id, limit=limit, cursor=cursor or "")
    )
    return ProjectPage(
        items=[project_from_proto(project) for project in page.items],
        next_cursor=page.next_cursor or None,
    )


@projects_router.get(
    "/{project_id}",
    operation_id="get_project",
    response_model=Project,
    summary="Get a project",
    description="With its narrative count, total word count and total cost, kept current "
    "as narratives arrive.",
    responses=problem_responses(401, 404, 500, 503),
)
async def get_project(user_id: CurrentUserId, project_id: ProjectId, clients: Clients) -> Project:
    return project_from_proto(
        await clients.projects.GetProject(
            projects_pb2.ProjectRef(user_id=user_id, project_id=project_id)
        )
    )


@projects_router.patch(
    "/{project_id}",
    operation_id="update_project",
    response_model=Project,
    summary="Change a project",
    description="Changes the fields sent; the others stay. `default_production_type: null` "
    "clears the default; `name` cannot be cleared.",
    responses=problem_responses(401, 404, 413, 415, 422, 500, 503),
)
async def update_project(
    body: ProjectUpdate,
    _json: JsonBody,
    user_id: CurrentUserId,
    project_id: ProjectId,
    clients: Clients,
) -> Project:
    sent = body.model_fields_set
    if "name" in sent and body.name is None:
        raise ProblemError(
            VALIDATION_FAILED,
            errors=[FieldError(pointer="#/name", detail="name cannot be null", code="null")],
        )
    message = projects_pb2.UpdateProjectRequest(
        user_id=user_id, project_id=project_id, fields=sorted(sent)
    )
    for name in ("name", "description", "default_genre", "world_notes"):
        if name in sent:
            setattr(message, name, getattr(body, name) or "")
    if body.default_production_type is not None:
        message.default_production_type = PRODUCTION_TYPES[body.default_production_type]
    return project_from_proto(await clients.projects.UpdateProject(message))


@projects_router.delete(
    "/{project_id}",
    operation_id="delete_project",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a project",
    description="With every narrative in it. Jobs of the project that are still running "
    "finish, but their narratives are not kept.",
    responses=problem_responses(401, 404, 500, 503),
)
async def delete_project(user_id: CurrentUserId, project_id: ProjectId, clients: Clients) -> Response:
    await clients.projects.DeleteProject(
        projects_pb2.ProjectRef(user_id=user_id, project_id=project_id)
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- Jobs submitted into a project ------------------------------------------------


async def submit_job(
    clients: ServiceClients,
    response: Response,
    request: jobs_pb2.SubmitJobRequest,
) -> Job:
    job = await clients.jobs.SubmitJob(request)
    response.headers["Location"] = job_location(job.id)
    return job_from_proto(job)


@projects_router.post(
    "/{project_id}/jobs",
    operation_id="submit_job",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Job,
    response_description="The queued job; its URL is in Location. Watch it at "
    "`/v1/jobs/{job_id}/events`.",
    summary="Submit a production brief",
    description="Queues a job that writes a narrative into the project, stage by stage. "
    "Its estimated cost is reserved from the plan up front (402 when the plan cannot "
    "cover it); the job stops before its actual cost would exceed the estimate. "
    "`production_type` and `genre` default to the project's; its world notes are shown "
    "to the model.",
    responses=problem_responses(
        401, 402, 404, 409, 413, 415, 422, 500, 503, s402=_S402_JOB, s409=_S409_JOB
    ),
)
async def submit_project_job(
    body: JobCreate,
    _json: JsonBody,
    user_id: CurrentUserId,
    project_id: ProjectId,
    clients: Clients,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> Job:
    # Another user's project is a 404 here, before anything is reserved.
    project = await clients.projects.GetProject(
        projects_pb2.ProjectRef(user_id=user_id, project_id=project_id)
    )
    production_type = body.production_type
    if production_type is None:
        production_type_value = project.default_production_type
        if not production_type_value:
            raise ProblemError(
                VALIDATION_FAILED,
                errors=[
                    FieldError(
                        pointer="#/production_type",
                        detail="production_type is required: the project has no default",
                        code="missing",
                    )
                ],
            )
    else:
        production_type_value = PRODUCTION_TYPES[production_type]
    brief = jobs_pb2.ProductionBrief(
        production_type=production_type_value,
        genre=body.genre or project.default_genre,
        premise=body.premise,
        characters=body.characters,
        setting=body.setting,
        tone=body.tone,
        target_words=body.target_words or 0,
        world_notes=project.world_notes,
    )
    return await submit_job(
        clients,
        response,
        jobs_pb2.SubmitJobRequest(
            user_id=user_id,
            project_id=project_id,
            brief=brief,
            idempotency_key=idempotency_key or "",
        ),
    )


# --- Narratives ------------------------------------------------------------------


@projects_router.get(
    "/{project_id}/narratives",
    operation_id="list_narratives",
    response_model=NarrativePage,
    summary="List a project's narratives",
    description="Every version, newest first, without texts.",
    responses=problem_responses(401, 404, 422, 500, 503),
)
async def list_narratives(
    user_id: CurrentUserId,
    project_id: ProjectId,
    clients: Clients,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> NarrativePage:
    page = await clients.projects.ListNarratives(
        projects_pb2.ListNarrativesRequest(
            user_id=user_id, project_id=project_id, limit=limit, cursor=cursor or ""
        )
    )
    return NarrativePage(
        items=[narrative_summary_from_proto(item) for item in page.items],
        next_cursor=page.next_cursor or None,
    )


@narratives_router.get(
    "/{narrative_id}",
    operation_id="get_narrative",
    response_model=Narrative,
    summary="Read a narrative",
    description="With its text and quality metrics; counts a view.",
    responses=problem_responses(401, 404, 500, 503),
)
async def get_narrative(
    user_id: CurrentUserId, narrative_id: NarrativeId, clients: Clients
) -> Narrative:
    return narrative_from_proto(
        await clients.projects.GetNarrative(
            projects_pb2.GetNarrativeRequest(
                user_id=user_id, narrative_id=narrative_id, count_view=True
            )
        )
    )


@narratives_router.get(
    "/{narrative_id}/versions",
    operation_id="list_narrative_versions",
    response_model=NarrativeVersions,
    summary="List a narrative's versions",
    description="Every version of its lineage (version 1 and its revisions), oldest first, "
    "without texts.",
    responses=problem_responses(401, 404, 500, 503),
)
async def list_narrative_versions(
    user_id: CurrentUserId, narrative_id: NarrativeId, clients: Clients
) -> NarrativeVersions:
    reply = await clients.projects.ListNarrativeVersions(
        projects_pb2.NarrativeRef(user_id=user_id, narrative_id=narrative_id)
    )
    return NarrativeVersions(
        versions=[narrative_summary_from_proto(item) for item in reply.versions]
    )


@narratives_router.post(
    "/{narrative_id}/revise",
    operation_id="revise_narrative",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Job,
    response_description="The queued revision job; its URL is in Location.",
    summary="Revise a narrative",
    description="Queues a job that writes the next version of the narrative following the "
    "instructions, keeping the `locked_sections` verbatim. Costs and limits as for a new "
    "job.",
    responses=problem_responses(
        401, 402, 404, 409, 413, 415, 422, 500, 503, s402=_S402_JOB, s409=_S409_JOB
    ),
)
async def revise_narrative(
    body: ReviseRequest,
    _json: JsonBody,
    user_id: CurrentUserId,
    narrative_id: NarrativeId,
    clients: Clients,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> Job:
    narrative = await clients.projects.GetNarrative(
        projects_pb2.GetNarrativeRequest(user_id=user_id, narrative_id=narrative_id)
    )
    project = await clients.projects.GetProject(
        projects_pb2.ProjectRef(user_id=user_id, project_id=narrative.project_id)
    )
    return await submit_job(
        clients,
        response,
        jobs_pb2.SubmitJobRequest(
            user_id=user_id,
            project_id=narrative.project_id,
            brief=jobs_pb2.ProductionBrief(
                production_type=narrative.production_type,
                genre=narrative.genre,
                world_notes=project.world_notes,
            ),
            revision=jobs_pb2.Revision(
                parent_narrative_id=narrative.id,
                parent_title=narrative.title,
                parent_text=narrative.text,
                instructions=body.instructions,
                locked_sections=body.locked_sections,
            ),
            idempotency_key=idempotency_key or "",
        ),
    )


@narratives_router.get(
    "/{narrative_id}/export",
    operation_id="export_narrative",
    response_class=StreamingResponse,
    response_description="The file, as an attachment named after the narrative's title.",
    summary="Export a narrative",
    description="The narrative as a file to keep: `md` (Markdown, the default), `txt` "
    "(plain text) or `epub` (an EPUB 3 book with a chapter per `## ` section). Counts a "
    "download and records the format. The author is the account's full name, or "
    f'"{DEFAULT_AUTHOR}" when it has none.',
    responses=EXPORT_RESPONSES,
)
async def export_narrative(
    user_id: CurrentUserId,
    narrative_id: NarrativeId,
    clients: Clients,
    format: ExportFormatQuery = "md",  # the query parameter's public name
) -> StreamingResponse:
    call = clients.projects.ExportNarrative(
        projects_pb2.ExportNarrativeRequest(
            user_id=user_id,
            narrative_id=narrative_id,
            format=EXPORT_FORMATS[format],
            author_name=await author_name(clients, user_id),
        )
    )
    return await file_response(call)


# What the app registers: both prefixes.
router = APIRouter()
router.include_router(projects_router)
router.include_router(narratives_router)
