"""Share links (stories service: ShareStory, RevokeShare, GetSharedStory).

The token in a share link is its only credential: GET /v1/shared/{token}
needs no account. Logs and traces show only its first characters (see
middleware.loggable_path).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fabula.stories.v1 import stories_pb2
from fastapi import APIRouter, Path, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from fabula_gateway.dependencies import Clients, CurrentUserId, StoryId
from fabula_gateway.mappers import to_datetime
from fabula_gateway.openapi import problem_responses
from fabula_gateway.stories.mappers import _SEGMENT_KINDS
from fabula_gateway.stories.schemas import SegmentKind

router = APIRouter(tags=["stories"])
_EXAMPLE_TOKEN = "kq3V0cX9rE2mYp1Zt8uWb4nLs7aHd6fJg5iKo0yQxRw"


class ShareLink(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "token": _EXAMPLE_TOKEN,
                    "url": f"https://api.fabula.dev/v1/shared/{_EXAMPLE_TOKEN}",
                    "created_at": "2025-01-01T12:00:00Z",
                }
            ]
        }
    )

    token: str = Field(description="Shown only now: only a hash of it is kept.")
    url: str = Field(description="The link to give readers (no account needed).")
    created_at: dt.datetime


class SharedSegment(BaseModel):
    position: int
    kind: SegmentKind
    text: str


class SharedStory(BaseModel):
    """A shared story, read-only: the path it follows, nothing about its owner."""

    title: str
    genre: str
    characters: list[str]
    is_complete: bool
    segments: list[SharedSegment] = Field(description="The story as it reads, in order.")
    created_at: dt.datetime
    updated_at: dt.datetime
    view_count: int = Field(description="Views of this link, this one included.")


_S404_SHARE = "No such story (or it belongs to someone else)."
_S404_REVOKE = "No such story (or it belongs to someone else), or it has no share link."


@router.post(
    "/v1/stories/{story_id}/share",
    operation_id="share_story",
    status_code=status.HTTP_201_CREATED,
    response_model=ShareLink,
    summary="Share a story",
    description="Makes a link anyone can read the story by, without an account. Sharing "
    "again makes a new link and the previous one stops working. The token is shown only in "
    "this answer.",
    responses=problem_responses(401, 404, 500, 503, s404=_S404_SHARE),
)
async def share_story(
    user_id: CurrentUserId, story_id: StoryId, clients: Clients, request: Request
) -> ShareLink:
    reply = await clients.stories.ShareStory(
        stories_pb2.StoryRef(user_id=user_id, story_id=story_id)
    )
    return ShareLink(
        token=reply.token,
        # Absolute, from the URL this request came to (proxy headers honoured).
        url=str(request.url_for("get_shared_story", token=reply.token)),
        created_at=to_datetime(reply.created_at),
    )


@router.delete(
    "/v1/stories/{story_id}/share",
    operation_id="revoke_share",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    response_description="Revoked: the link is 404 from now on.",
    summary="Stop sharing a story",
    description="The story's share link stops working at once.",
    responses=problem_responses(401, 404, 500, 503, s404=_S404_REVOKE),
)
async def revoke_share(user_id: CurrentUserId, story_id: StoryId, clients: Clients) -> None:
    await clients.stories.RevokeShare(stories_pb2.StoryRef(user_id=user_id, story_id=story_id))


@router.get(
    "/v1/shared/{token}",
    name="get_shared_story",
    operation_id="get_shared_story",
    response_model=SharedStory,
    summary="Read a shared story",
    description="The story behind a share link, read-only; no account needed. Each read "
    "counts as a view. 404 for a link that was revoked or replaced.",
    responses=problem_responses(404, 500, 503, s404="No such link, or it was revoked."),
)
async def get_shared_story(
    token: Annotated[str, Path(description="The token of the share link.")],
    clients: Clients,
    response: Response,
) -> SharedStory:
    reply = await clients.stories.GetSharedStory(stories_pb2.GetSharedStoryRequest(token=token))
    # Every read is a view, and a revoked link must fail at once: no caches.
    response.headers["Cache-Control"] = "no-store"
    return SharedStory(
        title=reply.title,
        genre=reply.genre,
        characters=list(reply.characters),
        is_complete=reply.is_complete,
        segments=[
            SharedSegment(position=s.position, kind=_SEGMENT_KINDS[s.kind], text=s.text)
            for s in reply.segments
        ],
        created_at=to_datetime(reply.created_at),
        updated_at=to_datetime(reply.updated_at),
        view_count=reply.view_count,
    )
