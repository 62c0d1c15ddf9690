"""GetStoryStats; a mixin of the stories servicer (see app.py). ListStories
with a query or filters is routed to discovery.service by StoriesServicer."""

from __future__ import annotations

import grpc
from fabula.stories.v1 import stories_pb2
from fabula_common.db import Database

from fabula_stories.discovery import service
from fabula_stories.leaving import service as leaving
from fabula_stories.stories import service as stories


class DiscoveryServicer:
    _db: Database

    async def GetStoryStats(
        self, request: stories_pb2.GetStoryStatsRequest, context: grpc.aio.ServicerContext
    ) -> stories_pb2.StoryStats:
        user_id = stories.parse_user_id(request.user_id)
        async with self._db.session_scope() as session:
            await leaving.refuse_deleted_reader(session, user_id)
            figures = await service.stats(session, user_id)
        return stories_pb2.StoryStats(
            total=figures.total,
            completed=figures.completed,
            favorites=figures.favorites,
            average_segments=figures.average_segments,
            total_words=figures.total_words,
            genres=[
                stories_pb2.GenreStats(
                    genre=genre.genre,
                    total=genre.total,
                    completed=genre.completed,
                    words=genre.words,
                )
                for genre in figures.genres
            ],
        )
