"""Stories and their segments (stories service)."""

from __future__ import annotations

from typing import Annotated

from fabula.stories.v1 import stories_pb2
from fastapi import APIRouter, Body, Header, Query, Request, Response, status
from starlette.responses import StreamingResponse

from fabula_gateway.dependencies import Clients, CurrentUserId, JsonBody, StoryId
from fabula_gateway.openapi import problem_responses
from fabula_gateway.stories.discovery import SearchQuery
from fabula_gateway.stories.mappers import (
    segment_page_from_proto,
    story_from_proto,
    story_page_from_proto,
    story_summary_from_proto,
)
from fabula_gateway.stories.schemas import (
    ContinueRequest,
    CreateStoryRequest,
    DirectionRequest,
    Segment,
    SegmentPage,
    Story,
    StoryPage,
    StorySummary,
    StoryView,
)
from fabula_gateway.stories.streaming import (
    EVENT_STREAM,
    ContinueStream,
    CreateStream,
    wants_event_stream,
)

router = APIRouter(prefix="/v1/stories", tags=["stories"])

# Why a story cannot take a segment now, told apart by `type`.
_S409 = (
    "The story cannot take a segment now. `type` ends in `story-busy` while another "
    "segment is being written (retry after `Retry-After` seconds) or in `story-complete` "
    "once the story has its ending (final)."
)
_S409_CREATE = (
    "The first request with this Idempotency-Key is still being processed (type "
    "`idempotency-key-in-progress`); retry after `Retry-After` seconds to get its answer."
)
_S409_WRITE = (
    _S409 + " `idempotency-key-in-progress` while the first request with the same "
    "Idempotency-Key is still being processed (retry after `Retry-After` seconds to get "
    "its answer)."
)
_S422 = (
    "The request is not valid (`errors` lists the invalid fields), or its Idempotency-Key "
    "was used with another request (type `idempotency-key-reused`)."
)
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Makes a retry safe: the same key with the same request answers with "
        "what the first request stored and uses no more quota; with another request, 422; "
        "while the first is still running, 409 `idempotency-key-in-progress`. A request "
        "that failed stored nothing, so its key may be used again. Remembered for 24 hours, "
        "per user. Use a fresh random value (e.g. a UUID) per intended request.",
    ),
]
# Segment positions travel as int32 in the stories contract.
MAX_POSITION = 2**31 - 1
_STORY_VIEWS = {"full": stories_pb2.STORY_VIEW_FULL, "basic": stories_pb2.STORY_VIEW_BASIC}
OptionalDirection = Annotated[DirectionRequest | None, Body()]

_SSE_EXAMPLE = (
    'event: token\ndata: {"text": "By morning "}\n\n'
    'event: token\ndata: {"text": "the ferry had stopped running."}\n\n'
    'event: segment\ndata: {"id": "0b7e6f5a-4d3c-4b2a-9f8e-7d6c5b4a3f2e", "position": 2, '
    '"text": "By morning the ferry had stopped running.", "kind": "continuation", '
    '"created_at": "2025-01-01T12:00:05Z", "generated_by": {"provider": "offline", '
    '"model": "offline-v1", "is_language_model": false}}\n\n'
)
_SSE_CREATE_EXAMPLE = (
    'event: token\ndata: {"text": "The bell "}\n\n'
    'event: token\ndata: {"text": "rang thirteen times."}\n\n'
    "event: story\ndata: "
    '{"id": "5f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f", '
    '"title": "The Thirteenth Bell", "genre": "mystery", "characters": [], '
    '"opening_line": null, "is_complete": false, "segment_count": 1, '
    '"created_at": "2025-01-01T12:00:05Z", '
    '"updated_at": "2025-01-01T12:00:05Z", "memory": "", "authors_note": "", '
    '"is_favorite": false, "search": null, '
    '"head_segment_id": "0b7e6f5a-4d3c-4b2a-9f8e-7d6c5b4a3f2e", '
    '"segments": [{"id": "0b7e6f5a-4d3c-4b2a-9f8e-7d6c5b4a3f2e", '
    '"position": 1, "text": "The bell rang thirteen times.", '
    '"kind": "opening", "created_at": "2025-01-01T12:00:05Z", '
    '"generated_by": {"provider": "offline", "model": "offline-v1", '
    '"is_language_model": false}}]}\n\n'
)


@router.post(
    "",
    operation_id="create_story",
    status_code=status.HTTP_201_CREATED,
    response_model=Story,
    response_description="The new story with its opening segment (when JSON is asked for).",
    summary="Start a story",
    description="Creates a story with a generated opening segment, and a generated title "
    "when none is given. Uses one generation of the plan's quota. The Location header "
    "of the JSON answer names the new story.\n\n"
    "With `Accept: text/event-stream` the answer is 200 with Server-Sent Events: "
    '`event: token` (data `{"text": ...}`) per piece of the opening as it is written, '
    "then one `event: story` (data: the new story, as the JSON answer would carry it) or "
    "`event: error` (data: a problem document). Errors before the first piece of text "
    "(quota, invalid request, ...) are ordinary problem responses. A client that leaves "
    "midway finds the story in its list all the same.\n\n"
    "Send an `Idempotency-Key` to retry safely after a lost answer: a retry answers with "
    "the story the first request created, as it is now (as Server-Sent Events: just its "
    "`story` event).",
    responses={
        200: {
            "description": "The opening as it is written, then the story (Server-Sent Events).",
            "content": {
                EVENT_STREAM: {"schema": {"type": "string"}, "example": _SSE_CREATE_EXAMPLE}
            },
        },
        **problem_responses(401, 402, 409, 413, 415, 422, 500, 503, s409=_S409_CREATE, s422=_S422),
    },
)
async def create_story(
    body: CreateStoryRequest,
    user_id: CurrentUserId,
    _json: JsonBody,
    clients: Clients,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> Story | StreamingResponse:
    request_message = stories_pb2.CreateStoryRequest(
        user_id=user_id,
        genre=body.genre,
        characters=body.characters,
        idempotency_key=idempotency_key or "",
    )
    if body.title is not None:
        request_message.title = body.title
    if body.opening_line is not None:
        request_message.opening_line = body.opening_line
    if wants_event_stream(request.headers.get("accept")):
        call = clients.stories.CreateStoryStream(
            request_message, timeout=clients.generation_timeout
        )
        # Awaiting the first event before answering makes early errors
        # (quota, invalid request, outage) real HTTP problems, even for SSE.
        stream = await CreateStream.start(call)
        return stream.response(request.app.state.streams_must_end)
    reply = await clients.stories.CreateStory(request_message, timeout=clients.generation_timeout)
    story = story_from_proto(reply)
    response.headers["Location"] = request.app.url_path_for("get_story", story_id=story.id)
    return story


@router.get(
    "",
    operation_id="list_stories",
    response_model=StoryPage,
    summary="List or search stories",
    description="The user's stories, newest first, without their segments. Follow "
    "`next_cursor` for further pages. With `q`, a full-text search: the stories whose "
    "title, genre, characters or followed-path text match, best match first, each with a "
    "`search` hit (rank and a snippet). `genre`, `is_complete` and `favorite` filter either "
    "list. A cursor works only with the `q` and filters it came with (else 422).",
    responses=problem_responses(401, 422, 500, 503),
)
async def list_stories(
    user_id: CurrentUserId,
    clients: Clients,
    search: SearchQuery,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 20,
    cursor: Annotated[
        str | None,
        Query(max_length=512, description="`next_cursor` of the previous page."),
    ] = None,
) -> StoryPage:
    request_message = stories_pb2.ListStoriesRequest(
        user_id=user_id, limit=limit, cursor=cursor or ""
    )
    search.apply(request_message)
    reply = await clients.stories.ListStories(request_message)
    return story_page_from_proto(reply)


@router.get(
    "/{story_id}",
    name="get_story",
    operation_id="get_story",
    response_model=Story | StorySummary,
    response_description="The story; with `view=basic`, without `segments`.",
    summary="Get a story",
    description="The story with all its segments, oldest first. With `view=basic` the "
    "story without `segments` (the shape of a list item): its size does not grow with the "
    "story, and `segment_count` tells how many segments there are to read page by page "
    "with `GET /v1/stories/{story_id}/segments`.",
    responses=problem_responses(401, 404, 422, 500, 503),
)
async def get_story(
    user_id: CurrentUserId,
    story_id: StoryId,
    clients: Clients,
    view: Annotated[
        StoryView, Query(description="`full` (the default): with every segment; `basic`: none.")
    ] = "full",
) -> Response:
    reply = await clients.stories.GetStory(
        stories_pb2.GetStoryRequest(user_id=user_id, story_id=story_id, view=_STORY_VIEWS[view])
    )
    story = story_from_proto(reply) if view == "full" else story_summary_from_proto(reply)
    # The JSON FastAPI would send, without its validating the model again
    # first (the hot read path; the model was validated as it was built).
    return Response(story.model_dump_json(), media_type="application/json")


@router.get(
    "/{story_id}/segments",
    operation_id="list_segments",
    response_model=SegmentPage,
    summary="List a story's segments",
    description="The story's segments with their texts, in story order, a page at a time: "
    "how a long story is read. Follow `next_after` for further pages. Positions never "
    "change, so a reader may also resume after the last position it has read.",
    responses=problem_responses(401, 404, 422, 500, 503),
)
async def list_segments(
    user_id: CurrentUserId,
    story_id: StoryId,
    clients: Clients,
    after: Annotated[
        int,
        Query(
            ge=0,
            le=MAX_POSITION,
            description="Start after the segment at this position; 0 (the default) for "
            "the first page, else `next_after` of the previous page.",
        ),
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 20,
) -> SegmentPage:
    reply = await clients.stories.ListSegments(
        stories_pb2.ListSegmentsRequest(
            user_id=user_id, story_id=story_id, after_position=after, limit=limit
        )
    )
    return segment_page_from_proto(reply)


@router.post(
    "/{story_id}/continue",
    operation_id="continue_story",
    status_code=status.HTTP_201_CREATED,
    response_model=Segment,
    response_description="The new segment (when JSON is asked for).",
    summary="Continue a story",
    description="Writes the next segment, optionally steered by `direction`; the body may "
    "be omitted. Uses one generation of the plan's quota. With `after_segment_id` (an "
    "earlier segment) it starts a branch there, which the story then follows.\n\n"
    "With `Accept: text/event-stream` the answer is 200 with Server-Sent Events: "
    '`event: token` (data `{"text": ...}`) per piece of text, then one `event: segment` '
    "(data: the stored segment) or `event: error` (data: a problem document). Errors "
    "before the first piece of text are ordinary problem responses.\n\n"
    "Send an `Idempotency-Key` to retry safely after a lost answer: a retry answers with "
    "the segment the first request stored (as Server-Sent Events: just its `segment` event).",
    responses={
        200: {
            "description": "The segment as it is written (Server-Sent Events).",
            "content": {EVENT_STREAM: {"schema": {"type": "string"}, "example": _SSE_EXAMPLE}},
        },
        **problem_responses(
            401, 402, 404, 409, 413, 415, 422, 500, 503, s409=_S409_WRITE, s422=_S422
        ),
    },
)
async def continue_story(
    # Authentication first: an anonymous caller learns nothing, not even 404.
    user_id: CurrentUserId,
    story_id: StoryId,
    _json: JsonBody,
    clients: Clients,
    request: Request,
    body: Annotated[ContinueRequest | None, Body()] = None,
    idempotency_key: IdempotencyKey = None,
) -> Segment | StreamingResponse:
    request_message = stories_pb2.ContinueStoryRequest(
        user_id=user_id, story_id=story_id, idempotency_key=idempotency_key or ""
    )
    if body is not None and body.direction:
        request_message.direction = body.direction
    if body is not None and body.after_segment_id is not None:
        request_message.after_segment_id = str(body.after_segment_id)
    call = clients.stories.ContinueStory(request_message, timeout=clients.generation_timeout)
    # Awaiting the first event before answering makes early errors (unknown
    # story, complete story, quota, outage) real HTTP problems, even for SSE.
    stream = await ContinueStream.start(call)
    if wants_event_stream(request.headers.get("accept")):
        return stream.response(request.app.state.streams_must_end)
    return await stream.collect()


@router.post(
    "/{story_id}/end",
    operation_id="end_story",
    response_model=Story,
    response_description="The completed story with its ending.",
    summary="End a story",
    description="Writes the ending, optionally steered by `direction`, and marks the "
    "story complete; the body may be omitted. Uses one generation of the plan's quota. "
    "Send an `Idempotency-Key` to retry safely after a lost answer: a retry answers with "
    "the story as it is now.",
    responses=problem_responses(
        401, 402, 404, 409, 413, 415, 422, 500, 503, s409=_S409_WRITE, s422=_S422
    ),
)
async def end_story(
    # Authentication first: an anonymous caller learns nothing, not even 404.
    user_id: CurrentUserId,
    story_id: StoryId,
    _json: JsonBody,
    clients: Clients,
    body: OptionalDirection = None,
    idempotency_key: IdempotencyKey = None,
) -> Story:
    request_message = stories_pb2.EndStoryRequest(
        user_id=user_id, story_id=story_id, idempotency_key=idempotency_key or ""
    )
    if body is not None and body.direction:
        request_message.direction = body.direction
    reply = await clients.stories.EndStory(request_message, timeout=clients.generation_timeout)
    return story_from_proto(reply)


@router.delete(
    "/{story_id}",
    operation_id="delete_story",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    response_description="Deleted.",
    summary="Delete a story",
    description="Deletes the story and its segments.",
    responses=problem_responses(401, 404, 500, 503),
)
async def delete_story(user_id: CurrentUserId, story_id: StoryId, clients: Clients) -> None:
    await clients.stories.DeleteStory(
        stories_pb2.DeleteStoryRequest(user_id=user_id, story_id=story_id)
    )
