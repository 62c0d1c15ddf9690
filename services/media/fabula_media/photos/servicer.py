"""fabula.media.v1.MediaService."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from fabula.media.v1 import media_pb2, media_pb2_grpc
from fabula_common.errors import FabulaError, InvalidArgument
from google.protobuf import empty_pb2

from fabula_media.photos.mapping import photo_to_proto, upload_to_proto
from fabula_media.photos.service import PhotosService, PhotoView, parse_photo_id, parse_user_id
from fabula_media.storage.local import LocalStorage


class LocalTransferOnly(FabulaError):
    code = grpc.StatusCode.UNIMPLEMENTED
    reason = "local-storage-only"


def _ref(request) -> tuple:
    return parse_user_id(request.user_id), parse_photo_id(request.photo_id)


def _view_to_proto(view: PhotoView) -> media_pb2.Photo:
    return photo_to_proto(view.photo, view.urls, view.urls_expire_at)


class MediaServicer(media_pb2_grpc.MediaServiceServicer):
    def __init__(self, photos: PhotosService) -> None:
        self.photos = photos

    async def CreatePhoto(self, request: media_pb2.CreatePhotoRequest, context) -> media_pb2.CreatePhotoResponse:
        photo, upload = await self.photos.create_photo(
            parse_user_id(request.user_id), request.content_type, request.size_bytes, request.filename
        )
        return media_pb2.CreatePhotoResponse(photo=photo_to_proto(photo), upload=upload_to_proto(upload))

    async def CompletePhoto(self, request: media_pb2.PhotoRef, context) -> media_pb2.Photo:
        return _view_to_proto(await self.photos.complete_photo(*_ref(request)))

    async def GetPhoto(self, request: media_pb2.PhotoRef, context) -> media_pb2.Photo:
        return _view_to_proto(await self.photos.get_photo(*_ref(request)))

    async def ListPhotos(self, request: media_pb2.ListPhotosRequest, context) -> media_pb2.ListPhotosResponse:
        photos, next_cursor = await self.photos.list_photos(
            parse_user_id(request.user_id), request.page_size, request.cursor
        )
        return media_pb2.ListPhotosResponse(
            photos=[photo_to_proto(photo) for photo in photos], next_cursor=next_cursor
        )

    async def DeletePhoto(self, request: media_pb2.PhotoRef, context) -> empty_pb2.Empty:
        await self.photos.delete_photo(*_ref(request))
        return empty_pb2.Empty()

    async def ReadPhoto(self, request: media_pb2.ReadPhotoRequest, context) -> media_pb2.ReadPhotoResponse:
        if request.max_bytes < 0:
            raise InvalidArgument("max_bytes must not be negative")
        data, rendition = await self.photos.read_photo(
            *_ref(request), request.rendition, request.max_bytes
        )
        return media_pb2.ReadPhotoResponse(
            data=data,
            content_type=rendition.content_type,
            width=rendition.width,
            height=rendition.height,
        )

    def _local(self) -> LocalStorage:
        storage = self.photos.storage
        if not isinstance(storage, LocalStorage):
            raise LocalTransferOnly(
                "bytes go straight to object storage: use the URLs CreatePhoto and GetPhoto return"
            )
        return storage

    async def PutUpload(self, request_iterator: AsyncIterator[media_pb2.UploadChunk], context) -> empty_pb2.Empty:
        storage = self._local()
        first = await anext(aiter(request_iterator), None)
        if first is None:
            raise InvalidArgument("an upload starts with a chunk carrying its token")

        async def chunks() -> AsyncIterator[bytes]:
            if first.data:
                yield first.data
            async for chunk in request_iterator:
                yield chunk.data

        await storage.receive_upload(first.token, first.content_type, chunks())
        return empty_pb2.Empty()

    async def GetDownload(self, request: media_pb2.DownloadRequest, context) -> AsyncIterator[media_pb2.DownloadChunk]:
        content_type, size, chunks = await self._local().open_download(request.token)
        first = True
        async for data in chunks:
            if first:
                yield media_pb2.DownloadChunk(content_type=content_type, size_bytes=size, data=data)
                first = False
            else:
                yield media_pb2.DownloadChunk(data=data)
        if first:  # an empty file: its type and size all the same
            yield media_pb2.DownloadChunk(content_type=content_type, size_bytes=size)

