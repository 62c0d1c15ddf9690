"""stories.v1 messages -> public JSON shapes."""

from __future__ import annotations

from typing import Any

from fabula.stories.v1 import stories_pb2

from fabula_gateway.mappers import to_datetime
from fabula_gateway.stories.schemas import (
    Alternatives,
    Branch,
    Branches,
    GeneratedBy,
    SearchHit,
    RevisionSource,
    Revisions,
    Segment,
    SegmentKind,
    SegmentPage,
    SegmentRevision,
    Story,
    StoryPage,
    StorySummary,
)

_SEGMENT_KINDS: dict[int, SegmentKind] = {
    stories_pb2.SEGMENT_KIND_OPENING: "opening",
    stories_pb2.SEGMENT_KIND_CONTINUATION: "continuation",
    stories_pb2.SEGMENT_KIND_ENDING: "ending",
}


def segment_from_proto(segment: stories_pb2.Segment) -> Segment:
    return Segment(
        id=segment.id,
        position=segment.position,
        text=segment.text,
        kind=_SEGMENT_KINDS[segment.kind],
        created_at=to_datetime(segment.created_at),
        generated_by=GeneratedBy(
            provider=segment.provider,
            model=segment.model,
            is_language_model=segment.is_language_model,
        ),
        parent_id=segment.parent_id or None,
        alternative_count=segment.alternative_count,
        alternative_number=segment.alternative_number,
        edited=segment.edited,
        word_count=segment.word_count,
    )


def _summary_fields(story: stories_pb2.Story) -> dict[str, Any]:
    return {
        "id": story.id,
        "title": story.title,
        "genre": story.genre,
        "characters": list(story.characters),
        "opening_line": story.opening_line if story.HasField("opening_line") else None,
        "is_complete": story.is_complete,
        "segment_count": story.segment_count,
        "created_at": to_datetime(story.created_at),
        "updated_at": to_datetime(story.updated_at),
        "memory": story.memory,
        "authors_note": story.authors_note,
        "is_favorite": story.is_favorite,
        "search": _search_hit(story) if story.HasField("search") else None,
        "head_segment_id": story.head_segment_id or None,
    }


def _search_hit(story: stories_pb2.Story) -> SearchHit:
    hit = story.search
    return SearchHit(rank=hit.rank, snippet=hit.snippet, segment_id=hit.segment_id or None)


def story_summary_from_proto(story: stories_pb2.Story) -> StorySummary:
    return StorySummary(**_summary_fields(story))


def story_from_proto(story: stories_pb2.Story) -> Story:
    return Story(
        **_summary_fields(story),
        segments=[segment_from_proto(segment) for segment in story.segments],
    )


def story_page_from_proto(page: stories_pb2.ListStoriesResponse) -> StoryPage:
    return StoryPage(
        items=[story_summary_from_proto(story) for story in page.items],
        next_cursor=page.next_cursor or None,
    )


def segment_page_from_proto(page: stories_pb2.ListSegmentsResponse) -> SegmentPage:
    return SegmentPage(
        items=[segment_from_proto(segment) for segment in page.segments],
        next_after=page.next_after_position if page.HasField("next_after_position") else None,
    )


def alternatives_from_proto(reply: stories_pb2.ListAlternativesResponse) -> Alternatives:
    return Alternatives(
        items=[segment_from_proto(segment) for segment in reply.alternatives],
        selected_id=next((s.id for s in reply.alternatives if s.selected), None),
    )


_REVISION_SOURCES: dict[int, RevisionSource] = {
    stories_pb2.REVISION_SOURCE_GENERATED: "generated",
    stories_pb2.REVISION_SOURCE_EDITED: "edited",
    stories_pb2.REVISION_SOURCE_RESTORED: "restored",
    stories_pb2.REVISION_SOURCE_IMPORTED: "imported",
}


def revisions_from_proto(reply: stories_pb2.ListRevisionsResponse) -> Revisions:
    return Revisions(
        items=[
            SegmentRevision(
                id=revision.id,
                segment_id=revision.segment_id,
                number=revision.number,
                text=revision.text,
                source=_REVISION_SOURCES[revision.source],
                created_at=to_datetime(revision.created_at),
            )
            for revision in reply.revisions
        ]
    )


def branches_from_proto(reply: stories_pb2.ListBranchesResponse) -> Branches:
    return Branches(
        items=[
            Branch(
                id=branch.id,
                length=branch.length,
                fork_position=branch.fork_position,
                preview=branch.preview,
                is_current=branch.is_current,
                is_complete=branch.is_complete,
                created_at=to_datetime(branch.created_at),
            )
            for branch in reply.branches
        ]
    )
