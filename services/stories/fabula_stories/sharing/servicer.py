"""ShareStory, RevokeShare and GetSharedStory; a mixin of the stories
servicer (see app.py)."""

from __future__ import annotations

import grpc
from fabula.stories.v1 import stories_pb2
from fabula_common.db import Database
from google.protobuf import empty_pb2

from fabula_stories.sharing import service
from fabula_stories.stories import service as stories
from fabula_stories.stories.models import SegmentKind
from fabula_stories.stories.servicer import _SEGMENT_KIND, _timestamp


class SharingServicer:
    _db: Database

    async def ShareStory(
        self, request: stories_pb2.StoryRef, context: grpc.aio.ServicerContext
    ) -> stories_pb2.StoryShare:
        user_id = stories.parse_user_id(request.user_id)
        story_id = stories.parse_story_id(request.story_id)
        async with self._db.session_scope() as session:
            shared = await service.share(session, user_id, story_id)
        return stories_pb2.StoryShare(
            story_id=str(shared.story_id),
            token=shared.token,
            created_at=_timestamp(shared.created_at),
        )

    async def RevokeShare(
        self, request: stories_pb2.StoryRef, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        user_id = stories.parse_user_id(request.user_id)
        story_id = stories.parse_story_id(request.story_id)
        async with self._db.session_scope() as session:
            await service.revoke(session, user_id, story_id)
        return empty_pb2.Empty()

    async def GetSharedStory(
        self, request: stories_pb2.GetSharedStoryRequest, context: grpc.aio.ServicerContext
    ) -> stories_pb2.SharedStory:
        async with self._db.session_scope() as session:
            shared = await service.read_shared(session, request.token)
        return stories_pb2.SharedStory(
            title=shared.title,
            genre=shared.genre,
            characters=shared.characters,
            is_complete=shared.is_complete,
            segments=[
                stories_pb2.SharedSegment(
                    position=segment.position,
                    kind=_SEGMENT_KIND[SegmentKind(segment.kind)],
                    text=segment.text,
                )
                for segment in shared.segments
            ],
            created_at=_timestamp(shared.created_at),
            updated_at=_timestamp(shared.updated_at),
            view_count=shared.view_count,
        )
