"""The fake stories service's search, statistics and share links (a mixin of
fakes.FakeStories): one story may be shared, with a token the fake makes."""

from __future__ import annotations

import grpc
from fabula.stories.v1 import stories_pb2
from google.protobuf import empty_pb2

SHARE_TOKEN = "kq3V0cX9rE2mYp1Zt8uWb4nLs7aHd6fJg5iKo0yQxRw"


class FakeStoryDiscovery:
    recorder: object

    def search_hit(self, request: stories_pb2.ListStoriesRequest) -> stories_pb2.SearchHit | None:
        if not request.query:
            return None
        return stories_pb2.SearchHit(
            rank=0.5, snippet=f"the «{request.query}» at dusk", segment_id="segment-3"
        )

    async def GetStoryStats(self, request, context):
        await self.recorder.receive("GetStoryStats", request, context)
        return stories_pb2.StoryStats(
            total=4,
            completed=2,
            favorites=1,
            average_segments=1.75,
            total_words=16,
            genres=[
                stories_pb2.GenreStats(genre="mystery", total=3, completed=1, words=12),
                stories_pb2.GenreStats(genre="romance", total=1, completed=1, words=4),
            ],
        )

    async def ShareStory(self, request, context):
        await self.recorder.receive("ShareStory", request, context)
        self.shared_token = SHARE_TOKEN
        return stories_pb2.StoryShare(
            story_id=request.story_id, token=SHARE_TOKEN, created_at={"seconds": 1735732800}
        )

    async def RevokeShare(self, request, context):
        await self.recorder.receive("RevokeShare", request, context)
        if getattr(self, "shared_token", None) is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "story not found or not shared")
        self.shared_token = None
        return empty_pb2.Empty()

    async def GetSharedStory(self, request, context):
        await self.recorder.receive("GetSharedStory", request, context)
        if request.token != getattr(self, "shared_token", None):
            await context.abort(grpc.StatusCode.NOT_FOUND, "shared story not found")
        self.views = getattr(self, "views", 0) + 1
        return stories_pb2.SharedStory(
            title="The Lighthouse Keeper",
            genre="mystery",
            characters=["Mara"],
            is_complete=False,
            segments=[
                stories_pb2.SharedSegment(
                    position=1, kind=stories_pb2.SEGMENT_KIND_OPENING, text="It began."
                ),
                stories_pb2.SharedSegment(
                    position=2, kind=stories_pb2.SEGMENT_KIND_CONTINUATION, text="It went on."
                ),
            ],
            created_at={"seconds": 1735732800},
            updated_at={"seconds": 1735732802},
            view_count=self.views,
        )
