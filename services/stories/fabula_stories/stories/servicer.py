"""fabula.stories.v1.StoriesService: protobuf in and out, nothing else.

Errors are domain errors (fabula_common.errors); the server interceptor turns
them into status codes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import grpc
from fabula.stories.v1 import stories_pb2, stories_pb2_grpc
from fabula_common.db import Database, Row
from fabula_common.errors import InvalidArgument
from google.protobuf import empty_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from fabula_stories.discovery import service as discovery
from fabula_stories.idempotency import service as idempotency
from fabula_stories.idempotency.service import Operation
from fabula_stories.leaving import service as leaving
from fabula_stories.stories import service
from fabula_stories.stories.models import Segment, SegmentKind, Story
from fabula_stories.stories.writer import StoryWriter

_SEGMENT_KIND = {
    SegmentKind.opening: stories_pb2.SEGMENT_KIND_OPENING,
    SegmentKind.continuation: stories_pb2.SEGMENT_KIND_CONTINUATION,
    SegmentKind.ending: stories_pb2.SEGMENT_KIND_ENDING,
}


class StoriesServicer(stories_pb2_grpc.StoriesServiceServicer):
    def __init__(self, db: Database, writer: StoryWriter) -> None:
        self._db = db
        self._writer = writer

    async def CreateStory(
        self, request: stories_pb2.CreateStoryRequest, context: grpc.aio.ServicerContext
    ) -> stories_pb2.Story:
        new = service.validate_new_story(
            user_id=request.user_id,
            genre=request.genre,
            title=request.title if request.HasField("title") else None,
            characters=list(request.characters),
            opening_line=request.opening_line if request.HasField("opening_line") else None,
        )
        keyed = idempotency.keyed_request(
            new.user_id,
            request.idempotency_key,
            Operation.create_story,
            [new.genre, new.title, new.characters, new.opening_line],
        )
        story = await self._writer.create(new, keyed)
        return story_to_proto(story, story.segments)

    async def ContinueStory(
        self, request: stories_pb2.ContinueStoryRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[stories_pb2.ContinueStoryEvent]:
        user_id = service.parse_user_id(request.user_id)
        direction = service.validate_direction(request.direction)
        story_id = service.parse_story_id(request.story_id)
        keyed = idempotency.keyed_request(
            user_id, request.idempotency_key, Operation.continue_story, [str(story_id), direction]
        )
        async for event in self._writer.continue_story(user_id, story_id, direction, keyed):
            if isinstance(event, Segment):
                yield stories_pb2.ContinueStoryEvent(segment=segment_to_proto(event))
            else:
                yield stories_pb2.ContinueStoryEvent(token=stories_pb2.TextDelta(text=event))

    async def EndStory(
        self, request: stories_pb2.EndStoryRequest, context: grpc.aio.ServicerContext
    ) -> stories_pb2.Story:
        user_id = service.parse_user_id(request.user_id)
        direction = service.validate_direction(request.direction)
        story_id = service.parse_story_id(request.story_id)
        keyed = idempotency.keyed_request(
            user_id, request.idempotency_key, Operation.end_story, [str(story_id), direction]
        )
        story = await self._writer.end(user_id, story_id, direction, keyed)
        return story_to_proto(story, story.segments)

    async def GetStory(
        self, request: stories_pb2.GetStoryRequest, context: grpc.aio.ServicerContext
    ) -> stories_pb2.Story:
        user_id = service.parse_user_id(request.user_id)
        story_id = service.parse_story_id(request.story_id)
        # One statement outside a transaction, rows straight to protobuf:
        # reads are the hot path (no ORM objects, no BEGIN/COMMIT).
        if not _with_segments(request.view):
            row = await service.read_story_summary(self._db, user_id, story_id)
            return story_to_proto(row, segment_count=row.segment_count)
        rows = await service.read_story(self._db, user_id, story_id)
        segments = [_segment_row_to_proto(row) for row in rows if row.segment_id is not None]
        return story_to_proto(rows[0], segments_proto=segments)

    async def ListSegments(
        self, request: stories_pb2.ListSegmentsRequest, context: grpc.aio.ServicerContext
    ) -> stories_pb2.ListSegmentsResponse:
        user_id = service.parse_user_id(request.user_id)
        story_id = service.parse_story_id(request.story_id)
        after_position = service.validate_after_position(request.after_position)
        limit = service.page_size(request.limit)
        async with self._db.session_scope() as session:
            page = await service.list_segments(session, user_id, story_id, after_position, limit)
        response = stories_pb2.ListSegmentsResponse(
            segments=[segment_to_proto(segment) for segment in page.segments]
        )
        if page.next_after_position is not None:
            response.next_after_position = page.next_after_position
        return response

    async def ListStories(
        self, request: stories_pb2.ListStoriesRequest, context: grpc.aio.ServicerContext
    ) -> stories_pb2.ListStoriesResponse:
        user_id = service.parse_user_id(request.user_id)
        limit = service.page_size(request.limit)
        # A query or a filter: search and filters (fabula_stories.discovery).
        wanted = discovery.criteria(
            query=request.query,
            genre=request.genre if request.HasField("genre") else None,
            is_complete=request.is_complete if request.HasField("is_complete") else None,
            is_favorite=request.is_favorite if request.HasField("is_favorite") else None,
        )
        if wanted is not None:
            async with self._db.session_scope() as session:
                await leaving.refuse_deleted_reader(session, user_id)
                found = await discovery.find(session, user_id, wanted, limit, request.cursor)
            response = stories_pb2.ListStoriesResponse(next_cursor=found.next_cursor)
            for match in found.items:
                item = story_to_proto(match.story, segment_count=match.segment_count)
                if match.hit is not None:
                    item.search.rank = match.hit.rank
                    item.search.snippet = match.hit.snippet
                    item.search.segment_id = str(match.hit.segment_id or "")
                response.items.append(item)
            return response
        async with self._db.session_scope() as session:
            await leaving.refuse_deleted_reader(session, user_id)
            page = await service.list_stories(session, user_id, limit, request.cursor)
        return stories_pb2.ListStoriesResponse(
            items=[story_to_proto(story, segment_count=count) for story, count in page.items],
            next_cursor=page.next_cursor,
        )

    async def ExportStories(
        self, request: stories_pb2.ExportStoriesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[stories_pb2.Story]:
        user_id = service.parse_user_id(request.user_id)
        async for story, segments in leaving.export_stories(self._db, user_id):
            yield story_to_proto(story, segments)

    async def DeleteStory(
        self, request: stories_pb2.DeleteStoryRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        user_id = service.parse_user_id(request.user_id)
        story_id = service.parse_story_id(request.story_id)
        async with self._db.session_scope() as session:
            await service.delete_story(session, user_id, story_id)
        return empty_pb2.Empty()


def _with_segments(view: int) -> bool:
    """Whether a GetStory view includes the segments; unspecified means full."""
    if view in (stories_pb2.STORY_VIEW_UNSPECIFIED, stories_pb2.STORY_VIEW_FULL):
        return True
    if view == stories_pb2.STORY_VIEW_BASIC:
        return False
    raise InvalidArgument(f"view {view} is unknown")


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _timestamp(value: dt.datetime) -> Timestamp:
    """As Timestamp.FromDatetime (a naive value is UTC), in exact integer
    arithmetic and a third of its time: reads build several per story."""
    since = (value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)) - _EPOCH
    return Timestamp(seconds=since.days * 86_400 + since.seconds, nanos=since.microseconds * 1000)


def segment_to_proto(segment: Segment) -> stories_pb2.Segment:
    return stories_pb2.Segment(
        id=str(segment.id),
        position=segment.position,
        text=segment.text,
        kind=_SEGMENT_KIND[SegmentKind(segment.kind)],
        created_at=_timestamp(segment.created_at),
        provider=segment.provider,
        model=segment.model,
        is_language_model=segment.is_language_model,
    )


def _segment_row_to_proto(row: Row) -> stories_pb2.Segment:
    """A segment of repository.STORY_WITH_SEGMENTS (its columns as in Segment)."""
    return stories_pb2.Segment(
        id=str(row.segment_id),
        position=row.position,
        text=row.text,
        kind=_SEGMENT_KIND[row.kind],  # a str: SegmentKind members hash as their values
        created_at=_timestamp(row.segment_created_at),
        provider=row.provider,
        model=row.model,
        is_language_model=row.is_language_model,
    )


def story_to_proto(
    story: Story | Row,
    segments: list[Segment] | None = None,
    *,
    segment_count: int | None = None,
    segments_proto: list[stories_pb2.Segment] | None = None,
) -> stories_pb2.Story:
    """The story (an ORM object or a row with the same columns); with its
    segments when given (list results carry only the count)."""
    if segments_proto is None:
        segments_proto = [segment_to_proto(s) for s in segments or ()]
    message = stories_pb2.Story(
        id=str(story.id),
        user_id=str(story.user_id),
        title=story.title,
        genre=story.genre,
        characters=story.characters,
        is_complete=story.is_complete,
        segments=segments_proto,
        created_at=_timestamp(story.created_at),
        updated_at=_timestamp(story.updated_at),
        segment_count=segment_count if segment_count is not None else len(segments_proto),
    )
    if story.opening_line is not None:
        message.opening_line = story.opening_line
    return message
