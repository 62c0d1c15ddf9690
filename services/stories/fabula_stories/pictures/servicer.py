"""fabula.stories.v1.TutorialsService and DrawingsService: proto <-> domain;
each call's transaction opens here."""

from __future__ import annotations

import uuid

import grpc
from fabula.stories.v1 import pictures_pb2, pictures_pb2_grpc
from fabula_common.db import Database
from google.protobuf import empty_pb2

from fabula_stories.pictures import service
from fabula_stories.pictures.mapping import (
    drawing_to_proto,
    picture_story_to_proto,
    tutorial_to_proto,
)
from fabula_stories.pictures.media import Media
from fabula_stories.pictures.writer import PictureStoryWriter
from fabula_stories.stories.service import parse_user_id


class TutorialsServicer(pictures_pb2_grpc.TutorialsServiceServicer):
    """The catalog. Creating and editing are for superusers: the gateway's
    routes let no one else call them (services trust the gateway's caller)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def ListTutorials(
        self, request: pictures_pb2.ListTutorialsRequest, context: grpc.aio.ServicerContext
    ) -> pictures_pb2.ListTutorialsResponse:
        category = request.category.strip().lower()
        async with self._db.session_scope() as session:
            tutorials = await service.repository.list_tutorials(session, category)
            return pictures_pb2.ListTutorialsResponse(
                tutorials=[tutorial_to_proto(tutorial) for tutorial in tutorials]
            )

    async def GetTutorial(
        self, request: pictures_pb2.GetTutorialRequest, context: grpc.aio.ServicerContext
    ) -> pictures_pb2.Tutorial:
        tutorial_id = service.parse_id(request.tutorial_id, "tutorial")
        async with self._db.session_scope() as session:
            return tutorial_to_proto(await service.get_tutorial(session, tutorial_id))

    async def CreateTutorial(
        self, request: pictures_pb2.CreateTutorialRequest, context: grpc.aio.ServicerContext
    ) -> pictures_pb2.Tutorial:
        parse_user_id(request.user_id)
        async with self._db.session_scope() as session:
            return tutorial_to_proto(await service.create_tutorial(session, request.tutorial))

    async def UpdateTutorial(
        self, request: pictures_pb2.UpdateTutorialRequest, context: grpc.aio.ServicerContext
    ) -> pictures_pb2.Tutorial:
        parse_user_id(request.user_id)
        tutorial_id = service.parse_id(request.tutorial_id, "tutorial")
        async with self._db.session_scope() as session:
            tutorial = await service.update_tutorial(
                session, tutorial_id, request.tutorial, list(request.fields)
            )
            return tutorial_to_proto(tutorial)


class DrawingsServicer(pictures_pb2_grpc.DrawingsServiceServicer):
    def __init__(self, db: Database, media: Media, writer: PictureStoryWriter) -> None:
        self._db = db
        self._media = media
        self._writer = writer

    async def CreateDrawing(
        self, request: pictures_pb2.CreateDrawingRequest, context: grpc.aio.ServicerContext
    ) -> pictures_pb2.Drawing:
        user_id = parse_user_id(request.user_id)
        photo_id = service.parse_photo_id(request.photo_id)
        tutorial_id = (
            service.parse_id(request.tutorial_id, "tutorial") if request.tutorial_id else None
        )
        # Media says whether the photo is the user's and processed (another's: 404).
        await self._media.require_completed(str(user_id), photo_id)
        async with self._db.session_scope() as session:
            view = await service.create_drawing(session, user_id, photo_id, tutorial_id)
            return drawing_to_proto(view)

    async def ListDrawings(
        self, request: pictures_pb2.ListDrawingsRequest, context: grpc.aio.ServicerContext
    ) -> pictures_pb2.ListDrawingsResponse:
        user_id = parse_user_id(request.user_id)
        async with self._db.session_scope() as session:
            views, next_cursor = await service.list_drawings(
                session, user_id, request.page_size, request.cursor
            )
            return pictures_pb2.ListDrawingsResponse(
                drawings=[drawing_to_proto(view) for view in views], next_cursor=next_cursor
            )

    async def GetDrawing(
        self, request: pictures_pb2.DrawingRef, context: grpc.aio.ServicerContext
    ) -> pictures_pb2.Drawing:
        user_id, drawing_id = self._drawing_ref(request)
        async with self._db.session_scope() as session:
            return drawing_to_proto(await service.drawing_view(session, user_id, drawing_id))

    async def DeleteDrawing(
        self, request: pictures_pb2.DrawingRef, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        user_id, drawing_id = self._drawing_ref(request)
        async with self._db.session_scope() as session:
            await service.delete_drawing(session, user_id, drawing_id)
        return empty_pb2.Empty()

    async def AddDrawingEdit(
        self, request: pictures_pb2.AddDrawingEditRequest, context: grpc.aio.ServicerContext
    ) -> pictures_pb2.Drawing:
        user_id, drawing_id = self._drawing_ref(request)
        photo_id = service.parse_photo_id(request.photo_id)
        async with self._db.session_scope() as session:
            # Another user's drawing is 404 before media is asked anything.
            await service.drawing_view(session, user_id, drawing_id)
        await self._media.require_completed(str(user_id), photo_id)
        async with self._db.session_scope() as session:
            return drawing_to_proto(await service.add_edit(session, user_id, drawing_id, photo_id))

    async def WritePictureStory(
        self, request: pictures_pb2.WritePictureStoryRequest, context: grpc.aio.ServicerContext
    ) -> pictures_pb2.PictureStory:
        user_id, drawing_id = self._drawing_ref(request)
        story = await self._writer.write(user_id, drawing_id, request.direction)
        return picture_story_to_proto(story)

    async def ListPictureStories(
        self, request: pictures_pb2.ListPictureStoriesRequest, context: grpc.aio.ServicerContext
    ) -> pictures_pb2.ListPictureStoriesResponse:
        user_id = parse_user_id(request.user_id)
        drawing_id = (
            service.parse_id(request.drawing_id, "drawing") if request.drawing_id else None
        )
        async with self._db.session_scope() as session:
            stories, next_cursor = await service.list_picture_stories(
                session,
                user_id,
                request.page_size,
                request.cursor,
                favorite_only=request.favorite_only,
                drawing_id=drawing_id,
            )
            return pictures_pb2.ListPictureStoriesResponse(
                picture_stories=[picture_story_to_proto(story) for story in stories],
                next_cursor=next_cursor,
            )

    async def GetPictureStory(
        self, request: pictures_pb2.PictureStoryRef, context: grpc.aio.ServicerContext
    ) -> pictures_pb2.PictureStory:
        user_id, story_id = self._story_ref(request)
        async with self._db.session_scope() as session:
            return picture_story_to_proto(await service.get_picture_story(session, user_id, story_id))

    async def UpdatePictureStory(
        self, request: pictures_pb2.UpdatePictureStoryRequest, context: grpc.aio.ServicerContext
    ) -> pictures_pb2.PictureStory:
        user_id, story_id = self._story_ref(request)
        async with self._db.session_scope() as session:
            story = await service.set_favorite(session, user_id, story_id, request.is_favorite)
            return picture_story_to_proto(story)

    async def DeletePictureStory(
        self, request: pictures_pb2.PictureStoryRef, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        user_id, story_id = self._story_ref(request)
        async with self._db.session_scope() as session:
            await service.delete_picture_story(session, user_id, story_id)
        return empty_pb2.Empty()

    @staticmethod
    def _drawing_ref(request) -> tuple[uuid.UUID, uuid.UUID]:
        return parse_user_id(request.user_id), service.parse_id(request.drawing_id, "drawing")

    @staticmethod
    def _story_ref(request) -> tuple[uuid.UUID, uuid.UUID]:
        return (
            parse_user_id(request.user_id),
            service.parse_id(request.picture_story_id, "picture story"),
        )
