"""Request parts shared by several routes: story id path parameter, JSON body check."""

from __future__ import annotations

import email.message
import uuid
from typing import Annotated

from fastapi import Depends, Path, Request

from fabula_gateway.problems import NOT_FOUND, UNSUPPORTED_MEDIA_TYPE, ProblemError


def _story_id(
    story_id: Annotated[
        str,
        Path(
            description="The story's id (a UUID).",
            examples=["6a1f0c2e-9d8b-4e7a-8c6d-5b4a3f2e1d0c"],
        ),
    ],
) -> str:
    # Not a UUID means no such story: 404 like any other unknown id, not 422.
    try:
        return str(uuid.UUID(story_id))
    except ValueError:
        raise ProblemError(NOT_FOUND, "Story not found.") from None


StoryId = Annotated[str, Depends(_story_id)]


def is_json_media_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


async def _require_json_body(request: Request) -> None:
    # FastAPI would read a non-JSON body as bytes and report a 422 about the
    # fields; the honest answer is that the media type is wrong.
    if await request.body() and not is_json_media_type(request.headers.get("content-type")):
        raise ProblemError(UNSUPPORTED_MEDIA_TYPE)


JsonBody = Annotated[None, Depends(_require_json_body)]
