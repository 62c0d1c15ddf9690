"""Shaping a story: alternatives of a segment (regenerate, list, select),
edits with revisions (edit, list, restore) and branches (list, select)
(stories service). Regenerating answers like continuing (JSON or
Server-Sent Events); the rest are plain JSON."""

from __future__ import annotations

import uuid
from typing import Annotated

from fabula.stories.v1 import stories_pb2
from fastapi import APIRouter, Body, Depends, Path, Request, status
from starlette.responses import StreamingResponse

from fabula_gateway.dependencies import Clients, CurrentUserId, JsonBody, StoryId
from fabula_gateway.openapi import problem_responses
from fabula_gateway.problems import NOT_FOUND, ProblemError
from fabula_gateway.stories.mappers import (
    alternatives_from_proto,
    branches_from_proto,
    revisions_from_proto,
    segment_from_proto,
    story_summary_from_proto,
)
from fabula_gateway.stories.routes import _S409_WRITE, _S422, _SSE_EXAMPLE, IdempotencyKey
from fabula_gateway.stories.schemas import (
    Alternatives,
    Branches,
    DirectionRequest,
    EditSegmentRequest,
    Revisions,
    Segment,
    StorySummary,
)
from fabula_gateway.stories.streaming import EVENT_STREAM, ContinueStream, wants_event_stream

router = APIRouter(prefix="/v1/stories/{story_id}", tags=["stories"])

_S409_BUSY = (
    "A segment of the story is being written (type `story-busy`): retry after "
    "`Retry-After` seconds."
)


def _path_id(name: str, what: str):
    """A path parameter holding the id (a UUID) of a `what`: anything else is
    no such thing, 404 like any other unknown id (not 422)."""

    async def parse(value: str) -> str:
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise ProblemError(NOT_FOUND, f"{what.capitalize()} not found.") from None

    # Set here, not written in the signature: with postponed annotations
    # FastAPI could not see `name` and `what`.
    parse.__annotations__ = {
        "value": Annotated[str, Path(alias=name, description=f"The {what}'s id (a UUID).")],
        "return": str,
    }
    return Depends(parse)


SegmentId = Annotated[str, _path_id("segment_id", "segment")]
AlternativeId = Annotated[str, _path_id("alternative_id", "alternative")]
RevisionId = Annotated[str, _path_id("revision_id", "revision")]
BranchId = Annotated[str, _path_id("branch_id", "branch")]


@router.post(
    "/segments/{segment_id}/regenerate",
    operation_id="regenerate_segment",
    status_code=status.HTTP_201_CREATED,
    response_model=Segment,
    response_description="The new version of the segment (when JSON is asked for).",
    summary="Write another version of a segment",
    description="Writes an alternative of the segment (same place in the story, same kind), "
    "optionally steered by `direction`; the body may be omitted. The story then follows the "
    "new version; the earlier ones are kept (see `.../alternatives`). Uses one generation of "
    "the plan's quota; a failed regeneration leaves the story as it was.\n\n"
    "Answers as `POST /v1/stories/{story_id}/continue` does: JSON, or Server-Sent Events "
    "with `Accept: text/event-stream`; an `Idempotency-Key` makes a retry safe.",
    responses={
        200: {
            "description": "The new version as it is written (Server-Sent Events).",
            "content": {EVENT_STREAM: {"schema": {"type": "string"}, "example": _SSE_EXAMPLE}},
        },
        **problem_responses(
            401, 402, 404, 409, 413, 415, 422, 500, 503, s409=_S409_WRITE, s422=_S422
        ),
    },
)
async def regenerate_segment(
    # Authentication first: an anonymous caller learns nothing, not even 404.
    user_id: CurrentUserId,
    story_id: StoryId,
    segment_id: SegmentId,
    _json: JsonBody,
    clients: Clients,
    request: Request,
    body: Annotated[DirectionRequest | None, Body()] = None,
    idempotency_key: IdempotencyKey = None,
) -> Segment | StreamingResponse:
    request_message = stories_pb2.RegenerateSegmentRequest(
        user_id=user_id,
        story_id=story_id,
        segment_id=segment_id,
        idempotency_key=idempotency_key or "",
    )
    if body is not None and body.direction:
        request_message.direction = body.direction
    call = clients.stories.RegenerateSegment(request_message, timeout=clients.generation_timeout)
    stream = await ContinueStream.start(call)
    if wants_event_stream(request.headers.get("accept")):
        return stream.response(request.app.state.streams_must_end)
    return await stream.collect()


@router.get(
    "/segments/{segment_id}/alternatives",
    operation_id="list_alternatives",
    response_model=Alternatives,
    summary="List a segment's alternatives",
    description="Every version of the segment's place in the story (it and its "
    "alternatives), oldest first, and which one the story follows.",
    responses=problem_responses(401, 404, 500, 503),
)
async def list_alternatives(
    user_id: CurrentUserId, story_id: StoryId, segment_id: SegmentId, clients: Clients
) -> Alternatives:
    reply = await clients.stories.ListAlternatives(
        stories_pb2.SegmentRef(user_id=user_id, story_id=story_id, segment_id=segment_id)
    )
    return alternatives_from_proto(reply)


@router.post(
    "/segments/{segment_id}/alternatives/{alternative_id}/select",
    operation_id="select_alternative",
    response_model=StorySummary,
    response_description="The story on its new path (without segments).",
    summary="Follow an alternative",
    description="Makes the story follow the alternative (one of the segment's versions), "
    "and on from it the newest segments written after it.",
    responses=problem_responses(401, 404, 409, 500, 503, s409=_S409_BUSY),
)
async def select_alternative(
    user_id: CurrentUserId,
    story_id: StoryId,
    segment_id: SegmentId,
    alternative_id: AlternativeId,
    clients: Clients,
) -> StorySummary:
    reply = await clients.stories.SelectAlternative(
        stories_pb2.SelectAlternativeRequest(
            user_id=user_id,
            story_id=story_id,
            segment_id=segment_id,
            alternative_id=alternative_id,
        )
    )
    return story_summary_from_proto(reply)


@router.patch(
    "/segments/{segment_id}",
    operation_id="edit_segment",
    response_model=Segment,
    response_description="The segment with its new text.",
    summary="Edit a segment's text",
    description="Changes the segment's text, without any model call (no quota used). The "
    "text it had is kept as a revision, which can be restored.",
    responses=problem_responses(401, 404, 409, 413, 415, 422, 500, 503, s409=_S409_BUSY),
)
async def edit_segment(
    user_id: CurrentUserId,
    story_id: StoryId,
    segment_id: SegmentId,
    body: EditSegmentRequest,
    _json: JsonBody,
    clients: Clients,
) -> Segment:
    reply = await clients.stories.EditSegment(
        stories_pb2.EditSegmentRequest(
            user_id=user_id, story_id=story_id, segment_id=segment_id, text=body.text
        )
    )
    return segment_from_proto(reply)


@router.get(
    "/segments/{segment_id}/revisions",
    operation_id="list_revisions",
    response_model=Revisions,
    summary="List a segment's earlier texts",
    description="The texts the segment had before it was edited or restored, newest first.",
    responses=problem_responses(401, 404, 500, 503),
)
async def list_revisions(
    user_id: CurrentUserId, story_id: StoryId, segment_id: SegmentId, clients: Clients
) -> Revisions:
    reply = await clients.stories.ListRevisions(
        stories_pb2.SegmentRef(user_id=user_id, story_id=story_id, segment_id=segment_id)
    )
    return revisions_from_proto(reply)


@router.post(
    "/segments/{segment_id}/revisions/{revision_id}/restore",
    operation_id="restore_revision",
    response_model=Segment,
    response_description="The segment with the revision's text.",
    summary="Restore an earlier text",
    description="Gives the segment a revision's text again (undo). The text it had is kept "
    "as a revision too, so a restore can be undone as well.",
    responses=problem_responses(401, 404, 409, 500, 503, s409=_S409_BUSY),
)
async def restore_revision(
    user_id: CurrentUserId,
    story_id: StoryId,
    segment_id: SegmentId,
    revision_id: RevisionId,
    clients: Clients,
) -> Segment:
    reply = await clients.stories.RestoreRevision(
        stories_pb2.RestoreRevisionRequest(
            user_id=user_id, story_id=story_id, segment_id=segment_id, revision_id=revision_id
        )
    )
    return segment_from_proto(reply)


@router.get(
    "/branches",
    operation_id="list_branches",
    response_model=Branches,
    summary="List a story's branches",
    description="Every path through the story, from its opening to a segment nothing "
    "follows yet, newest first; `is_current` marks the one the story follows.",
    responses=problem_responses(401, 404, 500, 503),
)
async def list_branches(user_id: CurrentUserId, story_id: StoryId, clients: Clients) -> Branches:
    reply = await clients.stories.ListBranches(
        stories_pb2.StoryRef(user_id=user_id, story_id=story_id)
    )
    return branches_from_proto(reply)


@router.post(
    "/branches/{branch_id}/select",
    operation_id="select_branch",
    response_model=StorySummary,
    response_description="The story on its new path (without segments).",
    summary="Follow a branch",
    description="Makes the story follow the branch (`id` from the list of branches).",
    responses=problem_responses(401, 404, 409, 500, 503, s409=_S409_BUSY),
)
async def select_branch(
    user_id: CurrentUserId, story_id: StoryId, branch_id: BranchId, clients: Clients
) -> StorySummary:
    reply = await clients.stories.SelectBranch(
        stories_pb2.SelectBranchRequest(user_id=user_id, story_id=story_id, branch_id=branch_id)
    )
    return story_summary_from_proto(reply)
