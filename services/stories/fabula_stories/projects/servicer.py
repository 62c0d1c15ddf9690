"""fabula.stories.v1.ProjectsService: projects and their narratives."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from fabula.stories.v1 import projects_pb2, projects_pb2_grpc, stories_pb2
from fabula_common.db import Database
from google.protobuf import empty_pb2

from fabula_stories.exchange import service as exchange
from fabula_stories.exchange.servicer import export_chunks, export_format
from fabula_stories.projects import service
from fabula_stories.projects.mapping import (
    narrative_to_proto,
    optional_production_type,
    project_to_proto,
)
from fabula_stories.stories.service import parse_user_id


def _project_ref(request) -> tuple:
    return parse_user_id(request.user_id), service.parse_id(request.project_id, "project")


def _narrative_ref(request) -> tuple:
    return parse_user_id(request.user_id), service.parse_id(request.narrative_id, "narrative")


class ProjectsServicer(projects_pb2_grpc.ProjectsServiceServicer):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def CreateProject(
        self, request: projects_pb2.CreateProjectRequest, context: grpc.aio.ServicerContext
    ) -> projects_pb2.Project:
        user_id = parse_user_id(request.user_id)
        project = await service.create_project(
            self._db,
            user_id,
            {
                "name": request.name,
                "description": request.description,
                "default_genre": request.default_genre,
                "default_production_type": optional_production_type(
                    request.default_production_type
                ),
                "world_notes": request.world_notes,
            },
        )
        return project_to_proto(project)

    async def GetProject(
        self, request: projects_pb2.ProjectRef, context: grpc.aio.ServicerContext
    ) -> projects_pb2.Project:
        user_id, project_id = _project_ref(request)
        async with self._db.session_scope() as session:
            return project_to_proto(await service.get_project(session, user_id, project_id))

    async def ListProjects(
        self, request: projects_pb2.ListProjectsRequest, context: grpc.aio.ServicerContext
    ) -> projects_pb2.ListProjectsResponse:
        user_id = parse_user_id(request.user_id)
        async with self._db.session_scope() as session:
            page = await service.list_projects(session, user_id, request.limit, request.cursor)
            return projects_pb2.ListProjectsResponse(
                items=[project_to_proto(project) for project in page.items],
                next_cursor=page.next_cursor,
            )

    async def UpdateProject(
        self, request: projects_pb2.UpdateProjectRequest, context: grpc.aio.ServicerContext
    ) -> projects_pb2.Project:
        user_id, project_id = _project_ref(request)
        given = {
            "name": request.name,
            "description": request.description,
            "default_genre": request.default_genre,
            "world_notes": request.world_notes,
        }
        if "default_production_type" in request.fields:
            given["default_production_type"] = optional_production_type(
                request.default_production_type
            )
        values = service.update_fields(list(request.fields), given)
        async with self._db.session_scope() as session:
            project = await service.update_project(session, user_id, project_id, values)
            return project_to_proto(project)

    async def DeleteProject(
        self, request: projects_pb2.ProjectRef, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        user_id, project_id = _project_ref(request)
        async with self._db.session_scope() as session:
            await service.delete_project(session, user_id, project_id)
        return empty_pb2.Empty()

    async def ListNarratives(
        self, request: projects_pb2.ListNarrativesRequest, context: grpc.aio.ServicerContext
    ) -> projects_pb2.ListNarrativesResponse:
        user_id, project_id = _project_ref(request)
        async with self._db.session_scope() as session:
            page = await service.list_narratives(
                session, user_id, project_id, request.limit, request.cursor
            )
            return projects_pb2.ListNarrativesResponse(
                items=[narrative_to_proto(item, with_text=False) for item in page.items],
                next_cursor=page.next_cursor,
            )

    async def GetNarrative(
        self, request: projects_pb2.GetNarrativeRequest, context: grpc.aio.ServicerContext
    ) -> projects_pb2.Narrative:
        user_id, narrative_id = _narrative_ref(request)
        async with self._db.session_scope() as session:
            narrative = await service.get_narrative(
                session, user_id, narrative_id, count_view=request.count_view
            )
            return narrative_to_proto(narrative, with_text=True)

    async def ListNarrativeVersions(
        self, request: projects_pb2.NarrativeRef, context: grpc.aio.ServicerContext
    ) -> projects_pb2.ListNarrativeVersionsResponse:
        user_id, narrative_id = _narrative_ref(request)
        async with self._db.session_scope() as session:
            versions = await service.list_versions(session, user_id, narrative_id)
            return projects_pb2.ListNarrativeVersionsResponse(
                versions=[narrative_to_proto(item, with_text=False) for item in versions]
            )

    async def ExportNarrative(
        self, request: projects_pb2.ExportNarrativeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[stories_pb2.ExportChunk]:
        user_id, narrative_id = _narrative_ref(request)
        fmt = export_format(request.format)
        author_name = exchange.validate_author_name(request.author_name)
        exported = await service.export_narrative(
            self._db, user_id, narrative_id, fmt, author_name
        )
        for chunk in export_chunks(exported):
            yield chunk
