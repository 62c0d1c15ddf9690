"""fabula.stories.v1.StoriesService: protobuf in and out, nothing else.

Errors are domain errors (fabula_common.errors); the server interceptor turns
them into status codes.
"""

from __future__ import annotations

import datetime as dt
import uuid
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
from fabula_stories.stories import service, shaping
from fabula_stories.stories.models import RevisionSource, Segment, SegmentKind, Story
from fabula_stories.stories.writer import ContinueEvent, StoryWriter

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
        new, keyed = _new_story(request)
        story = await self._writer.create(new, keyed)
        return await self._read_full(new.user_id, story.id)

    async def CreateStoryStream(
        self, request: stories_pb2.CreateStoryRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[stories_pb2.CreateStoryEvent]:
        new, keyed = _new_story(request)
        async for event in self._writer.create_stream(new, keyed):
            if isinstance(event, Story):
                # As CreateStory answers it.
                story = await self._read_full(new.user_id, event.id)
                yield stories_pb2.CreateStoryEvent(story=story)
            else:
                yield stories_pb2.CreateStoryEvent(token=stories_pb2.TextDelta(text=event))

    async def ContinueStory(
        self, request: stories_pb2.ContinueStoryRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[stories_pb2.ContinueStoryEvent]:
        user_id = service.parse_user_id(request.user_id)
        direction = service.validate_direction(request.direction)
        story_id = service.parse_story_id(request.story_id)
        after_segment_id = (
            service.parse_segment_id(request.after_segment_id)
            if request.after_segment_id
            else None
        )
        fields: list = [str(story_id), direction]
        if after_segment_id is not None:  # so keys of plain continues keep their fingerprint
            fields.append(str(after_segment_id))
        keyed = idempotency.keyed_request(
            user_id, request.idempotency_key, Operation.continue_story, fields
        )
        events = self._writer.continue_story(
            user_id, story_id, direction, keyed, after_segment_id=after_segment_id
        )
        async for event in self._events(user_id, events):
            yield event

    async def RegenerateSegment(
        self, request: stories_pb2.RegenerateSegmentRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[stories_pb2.ContinueStoryEvent]:
        user_id = service.parse_user_id(request.user_id)
        direction = service.validate_direction(request.direction)
        story_id = service.parse_story_id(request.story_id)
        segment_id = service.parse_segment_id(request.segment_id)
        # Keys are per operation (idempotency_keys.operation); a regeneration
        # is told apart from a continue by its fingerprint, so one key used
        # for both is refused as reused.
        keyed = idempotency.keyed_request(
            user_id,
            request.idempotency_key,
            Operation.continue_story,
            ["regenerate", str(story_id), str(segment_id), direction],
        )
        events = self._writer.regenerate(user_id, story_id, segment_id, direction, keyed)
        async for event in self._events(user_id, events):
            yield event

    async def _events(
        self, user_id: uuid.UUID, events: AsyncIterator[ContinueEvent]
    ) -> AsyncIterator[stories_pb2.ContinueStoryEvent]:
        async for event in events:
            if isinstance(event, Segment):
                # Read back: how many alternatives it has is the database's to say.
                row = await service.read_segment(self._db, user_id, event.id)
                yield stories_pb2.ContinueStoryEvent(segment=segment_row_to_proto(row))
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
        return await self._read_full(user_id, story.id)

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
        return await self._read_full(user_id, story_id)

    async def _read_full(self, user_id: uuid.UUID, story_id: uuid.UUID) -> stories_pb2.Story:
        """The story with its followed path, as GetStory (FULL) reads it."""
        rows = await service.read_story(self._db, user_id, story_id)
        segments = [segment_row_to_proto(row) for row in rows if row.segment_id is not None]
        return story_to_proto(rows[0], segments_proto=segments)

    async def _read_basic(self, user_id: uuid.UUID, story_id: uuid.UUID) -> stories_pb2.Story:
        row = await service.read_story_summary(self._db, user_id, story_id)
        return story_to_proto(row, segment_count=row.segment_count)

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
            segments=[segment_row_to_proto(row) for row in page.segments]
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


    # --- Shaping ---------------------------------------------------------------------

    async def ListAlternatives(
        self, request: stories_pb2.SegmentRef, context: grpc.aio.ServicerContext
    ) -> stories_pb2.ListAlternativesResponse:
        user_id, story_id, segment_id = _segment_ref(request)
        async with self._db.session_scope() as session:
            rows = await shaping.list_alternatives(session, user_id, story_id, segment_id)
        return stories_pb2.ListAlternativesResponse(
            alternatives=[segment_row_to_proto(row) for row in rows]
        )

    async def SelectAlternative(
        self, request: stories_pb2.SelectAlternativeRequest, context: grpc.aio.ServicerContext
    ) -> stories_pb2.Story:
        user_id, story_id, segment_id = _segment_ref(request)
        alternative_id = service.parse_segment_id(request.alternative_id, "alternative")
        async with self._db.session_scope() as session:
            await shaping.select_alternative(
                session, user_id, story_id, segment_id, alternative_id
            )
        return await self._read_basic(user_id, story_id)

    async def EditSegment(
        self, request: stories_pb2.EditSegmentRequest, context: grpc.aio.ServicerContext
    ) -> stories_pb2.Segment:
        user_id, story_id, segment_id = _segment_ref(request)
        text = shaping.validate_segment_text(request.text)
        async with self._db.session_scope() as session:
            await shaping.edit_segment(session, user_id, story_id, segment_id, text)
        return segment_row_to_proto(await service.read_segment(self._db, user_id, segment_id))

    async def ListRevisions(
        self, request: stories_pb2.SegmentRef, context: grpc.aio.ServicerContext
    ) -> stories_pb2.ListRevisionsResponse:
        user_id, story_id, segment_id = _segment_ref(request)
        async with self._db.session_scope() as session:
            revisions = await shaping.list_revisions(session, user_id, story_id, segment_id)
        return stories_pb2.ListRevisionsResponse(
            revisions=[
                stories_pb2.SegmentRevision(
                    id=str(revision.id),
                    segment_id=str(revision.segment_id),
                    number=revision.number,
                    text=revision.text,
                    source=_REVISION_SOURCE[RevisionSource(revision.source)],
                    created_at=_timestamp(revision.created_at),
                )
                for revision in revisions
            ]
        )

    async def RestoreRevision(
        self, request: stories_pb2.RestoreRevisionRequest, context: grpc.aio.ServicerContext
    ) -> stories_pb2.Segment:
        user_id, story_id, segment_id = _segment_ref(request)
        revision_id = service.parse_segment_id(request.revision_id, "revision")
        async with self._db.session_scope() as session:
            await shaping.restore_revision(session, user_id, story_id, segment_id, revision_id)
        return segment_row_to_proto(await service.read_segment(self._db, user_id, segment_id))

    async def ListBranches(
        self, request: stories_pb2.StoryRef, context: grpc.aio.ServicerContext
    ) -> stories_pb2.ListBranchesResponse:
        user_id = service.parse_user_id(request.user_id)
        story_id = service.parse_story_id(request.story_id)
        async with self._db.session_scope() as session:
            branches = await shaping.list_branches(session, user_id, story_id)
        return stories_pb2.ListBranchesResponse(
            branches=[
                stories_pb2.Branch(
                    id=str(branch.leaf_id),
                    length=branch.length,
                    fork_position=branch.fork_position,
                    preview=branch.preview,
                    is_current=branch.is_current,
                    is_complete=branch.is_complete,
                    created_at=_timestamp(branch.created_at),
                )
                for branch in branches
            ]
        )

    async def SelectBranch(
        self, request: stories_pb2.SelectBranchRequest, context: grpc.aio.ServicerContext
    ) -> stories_pb2.Story:
        user_id = service.parse_user_id(request.user_id)
        story_id = service.parse_story_id(request.story_id)
        branch_id = service.parse_segment_id(request.branch_id, "branch")
        async with self._db.session_scope() as session:
            await shaping.select_branch(session, user_id, story_id, branch_id)
        return await self._read_basic(user_id, story_id)


def _new_story(
    request: stories_pb2.CreateStoryRequest,
) -> tuple[service.NewStory, idempotency.KeyedRequest | None]:
    """A CreateStory or CreateStoryStream request, validated, with its key
    (one fingerprint: a key used for either call is the same request)."""
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
    return new, keyed


def _segment_ref(
    request: stories_pb2.SegmentRef
    | stories_pb2.SelectAlternativeRequest
    | stories_pb2.EditSegmentRequest
    | stories_pb2.RestoreRevisionRequest,
) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    return (
        service.parse_user_id(request.user_id),
        service.parse_story_id(request.story_id),
        service.parse_segment_id(request.segment_id),
    )


_REVISION_SOURCE = {
    RevisionSource.generated: stories_pb2.REVISION_SOURCE_GENERATED,
    RevisionSource.edited: stories_pb2.REVISION_SOURCE_EDITED,
    RevisionSource.restored: stories_pb2.REVISION_SOURCE_RESTORED,
    RevisionSource.imported: stories_pb2.REVISION_SOURCE_IMPORTED,
}

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
    """A segment without what only a read tells (its alternatives): for
    exports; the API's answers read segments with segment_row_to_proto."""
    return stories_pb2.Segment(
        id=str(segment.id),
        position=segment.position,
        text=segment.text,
        kind=_SEGMENT_KIND[SegmentKind(segment.kind)],
        created_at=_timestamp(segment.created_at),
        provider=segment.provider,
        model=segment.model,
        is_language_model=segment.is_language_model,
        parent_id="" if segment.parent_id is None else str(segment.parent_id),
        edited=segment.edited_at is not None,
        selected=segment.on_path,
        word_count=segment.word_count,
    )


def segment_row_to_proto(row: Row) -> stories_pb2.Segment:
    """A segment read with repository.SEGMENT_COLUMNS (a driver row or a
    SQLAlchemy one)."""
    return stories_pb2.Segment(
        id=str(row.segment_id),
        position=row.position,
        text=row.text,
        kind=_SEGMENT_KIND[row.kind],  # a str: SegmentKind members hash as their values
        created_at=_timestamp(row.segment_created_at),
        provider=row.provider,
        model=row.model,
        is_language_model=row.is_language_model,
        parent_id="" if row.parent_id is None else str(row.parent_id),
        alternative_count=row.alternative_count,
        alternative_number=row.alternative_number,
        edited=row.edited_at is not None,
        selected=row.on_path,
        word_count=row.word_count,
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
        memory=story.memory,
        authors_note=story.authors_note,
        is_favorite=story.is_favorite,
        head_segment_id="" if story.head_segment_id is None else str(story.head_segment_id),
    )
    if story.opening_line is not None:
        message.opening_line = story.opening_line
    return message
