"""Server-Sent Events for writing a story (the plumbing is
fabula_gateway.streaming's): `token` events as the text is written, then the
stored `segment` (continuing) or the created `story` (starting one)."""

from __future__ import annotations

import json

from fabula.stories.v1 import stories_pb2
from fastapi.sse import format_sse_event

from fabula_gateway.stories.mappers import segment_from_proto, story_from_proto
from fabula_gateway.stories.schemas import Segment
from fabula_gateway.streaming import (  # noqa: F401 - re-exported for the story routes
    EVENT_STREAM,
    GrpcEventStream,
    error_event,
    problem_for_stream_error,
    wants_event_stream,
)


def _token(event: stories_pb2.ContinueStoryEvent | stories_pb2.CreateStoryEvent) -> bytes:
    text = json.dumps({"text": event.token.text}, ensure_ascii=False)
    return format_sse_event(event="token", data_str=text)


class ContinueStream(GrpcEventStream[stories_pb2.ContinueStoryEvent]):
    """A started ContinueStory call whose first event has arrived."""

    ended_without_result = "The story service ended without a segment."
    cut_by_shutdown = (
        "The gateway is shutting down; the story service stores the segment "
        "regardless: fetch the story before continuing it again."
    )

    async def collect(self) -> Segment:  # type: ignore[override]
        """The stored segment, ignoring the text deltas (the JSON answer)."""
        return await super().collect(
            lambda event: segment_from_proto(event.segment) if event.HasField("segment") else None
        )

    def ends(self, event: stories_pb2.ContinueStoryEvent) -> bool:
        return event.HasField("segment")

    def sse(self, event: stories_pb2.ContinueStoryEvent) -> list[bytes]:
        if event.HasField("token"):
            return [_token(event)]
        if event.HasField("segment"):
            segment = segment_from_proto(event.segment)
            return [format_sse_event(event="segment", data_str=segment.model_dump_json())]
        return []


class CreateStream(GrpcEventStream[stories_pb2.CreateStoryEvent]):
    """A started CreateStoryStream call whose first event has arrived."""

    ended_without_result = "The story service ended without the story."
    cut_by_shutdown = (
        "The gateway is shutting down; the story service stores the story "
        "regardless: find it in the list of stories."
    )

    def ends(self, event: stories_pb2.CreateStoryEvent) -> bool:
        return event.HasField("story")

    def sse(self, event: stories_pb2.CreateStoryEvent) -> list[bytes]:
        if event.HasField("token"):
            return [_token(event)]
        if event.HasField("story"):
            # The JSON a 201 answer carries.
            story = story_from_proto(event.story)
            return [format_sse_event(event="story", data_str=story.model_dump_json())]
        return []
