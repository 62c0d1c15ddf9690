"""ExportStory and ImportStory of fabula.stories.v1.StoriesService (a mixin
the app composes into its servicer)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator

import grpc
from fabula.stories.v1 import stories_pb2, stories_pb2_grpc
from fabula_common.db import Database
from fabula_common.errors import InvalidArgument

from fabula_stories.exchange import service
from fabula_stories.exchange.formats import ExportFile, Format
from fabula_stories.stories.service import parse_story_id, parse_user_id

# gRPC's default largest message is 4 MiB; a chunk stays far below it.
CHUNK_BYTES = 64 * 1024

_FORMATS = {
    stories_pb2.EXPORT_FORMAT_MARKDOWN: Format.markdown,
    stories_pb2.EXPORT_FORMAT_TEXT: Format.text,
    stories_pb2.EXPORT_FORMAT_EPUB: Format.epub,
}


def export_format(value: int) -> Format:
    try:
        return _FORMATS[value]
    except KeyError:
        raise InvalidArgument(f"format {value} is not one of markdown, text and epub") from None


def export_chunks(exported: ExportFile) -> Iterator[stories_pb2.ExportChunk]:
    """A file as ExportChunks: its header, then its bytes in chunks."""
    yield stories_pb2.ExportChunk(
        header=stories_pb2.ExportHeader(
            filename=exported.filename,
            content_type=exported.content_type,
            size_bytes=len(exported.data),
        )
    )
    data = memoryview(exported.data)
    for start in range(0, len(data), CHUNK_BYTES):
        yield stories_pb2.ExportChunk(data=bytes(data[start : start + CHUNK_BYTES]))


class ExchangeServicer(stories_pb2_grpc.StoriesServiceServicer):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def ExportStory(
        self, request: stories_pb2.ExportStoryRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[stories_pb2.ExportChunk]:
        user_id = parse_user_id(request.user_id)
        story_id = parse_story_id(request.story_id)
        fmt = export_format(request.format)
        author_name = service.validate_author_name(request.author_name)
        exported = await service.export_story(self._db, user_id, story_id, fmt, author_name)
        for chunk in export_chunks(exported):
            yield chunk

    async def ImportStory(
        self, request: stories_pb2.ImportStoryRequest, context: grpc.aio.ServicerContext
    ) -> stories_pb2.ImportStoryResponse:
        story = service.validate_import(
            user_id=parse_user_id(request.user_id),
            source=request.source,
            original_id=request.original_id,
            title=request.title,
            genre=request.genre,
            characters=list(request.characters),
            opening_line=request.opening_line if request.HasField("opening_line") else None,
            segments=list(request.segments),
            is_complete=request.is_complete,
            created_at=(
                request.created_at.ToDatetime(dt.UTC) if request.HasField("created_at") else None
            ),
            updated_at=(
                request.updated_at.ToDatetime(dt.UTC) if request.HasField("updated_at") else None
            ),
        )
        async with self._db.session_scope() as session:
            story_id, imported = await service.import_story(session, story)
        return stories_pb2.ImportStoryResponse(story_id=str(story_id), imported=imported)
