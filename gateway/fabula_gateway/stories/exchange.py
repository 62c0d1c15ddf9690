"""A story as a file: Markdown, plain text or EPUB (stories' ExportStory)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated, Literal
from urllib.parse import quote

import grpc
from fabula.stories.v1 import stories_pb2
from fabula.users.v1 import users_pb2
from fastapi import APIRouter, Query
from starlette.responses import StreamingResponse

from fabula_gateway.clients import ServiceClients
from fabula_gateway.dependencies import Clients, CurrentUserId, StoryId
from fabula_gateway.openapi import problem_responses

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/stories", tags=["stories"])

ExportFormat = Literal["md", "txt", "epub"]
EXPORT_FORMATS = {
    "md": stories_pb2.EXPORT_FORMAT_MARKDOWN,
    "txt": stories_pb2.EXPORT_FORMAT_TEXT,
    "epub": stories_pb2.EXPORT_FORMAT_EPUB,
}
# The author's name in the file when the account has none (or users cannot
# say in time): never the email, which a shared file would leak.
DEFAULT_AUTHOR = "Fabula writer"
# The name is a nicety: the export does not wait long for it.
AUTHOR_NAME_TIMEOUT_SECONDS = 2.0


async def author_name(clients: ServiceClients, user_id: str) -> str:
    try:
        user = await clients.users.GetUser(
            users_pb2.GetUserRequest(user_id=user_id), timeout=AUTHOR_NAME_TIMEOUT_SECONDS
        )
    except grpc.aio.AioRpcError as err:
        log.warning("export: no author name from users (%s); using the default", err.code().name)
        return DEFAULT_AUTHOR
    return user.full_name.strip() or DEFAULT_AUTHOR


def content_disposition(filename: str) -> str:
    """An attachment named `filename`: plain for every client, and RFC 5987's
    `filename*` (UTF-8, percent-encoded) for those that prefer it."""
    plain = filename.encode("ascii", "replace").decode().replace("\\", "_").replace('"', "_")
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(filename, safe='')}"


# What an export route answers and takes, for stories and narratives alike.
EXPORT_RESPONSES = {
    200: {
        "content": {
            "text/markdown": {"schema": {"type": "string"}},
            "text/plain": {"schema": {"type": "string"}},
            "application/epub+zip": {"schema": {"type": "string", "format": "binary"}},
        }
    },
    **problem_responses(401, 404, 422, 500, 503),
}
ExportFormatQuery = Annotated[
    ExportFormat, Query(description="`md` (the default), `txt` or `epub`.")
]


@router.get(
    "/{story_id}/export",
    operation_id="export_story",
    response_class=StreamingResponse,
    response_description="The file, as an attachment named after the story's title.",
    summary="Export a story",
    description="The story as it reads (the path it follows, one version per position) as "
    "a file to keep: `md` (Markdown, the default), `txt` (plain text) or `epub` (an EPUB 3 "
    "book with a chapter per segment). The author is the account's full name, or "
    f'"{DEFAULT_AUTHOR}" when it has none.',
    responses=EXPORT_RESPONSES,
)
async def export_story(
    user_id: CurrentUserId,
    story_id: StoryId,
    clients: Clients,
    format: ExportFormatQuery = "md",  # the query parameter's public name
) -> StreamingResponse:
    call = clients.stories.ExportStory(
        stories_pb2.ExportStoryRequest(
            user_id=user_id,
            story_id=story_id,
            format=EXPORT_FORMATS[format],
            author_name=await author_name(clients, user_id),
        )
    )
    return await file_response(call)


async def file_response(call: grpc.aio.UnaryStreamCall) -> StreamingResponse:
    """An export call's file (header, then chunks) as an attachment. The
    header is awaited before answering: an unknown resource is a real 404."""
    chunks = aiter(call)
    try:
        first = await anext(chunks)
    except BaseException:
        call.cancel()
        raise
    header = first.header
    return StreamingResponse(
        _data(call, chunks),
        media_type=header.content_type,
        headers={
            "Content-Disposition": content_disposition(header.filename),
            "Content-Length": str(header.size_bytes),
        },
    )


async def _data(
    call: grpc.aio.UnaryStreamCall, chunks: AsyncIterator[stories_pb2.ExportChunk]
) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            yield chunk.data
    except grpc.aio.AioRpcError as err:
        # The 200 and its length are sent: the client sees a short body.
        log.warning("export stream failed: %s %s", err.code().name, err.details())
        raise
    finally:
        call.cancel()  # A no-op once the call has finished; frees it when the client left.
