"""What stories asks of the media service (fabula.media.v1, its contract
only): whether a photo is the user's and processed, and a processed image's
bytes for a picture story. Media's refusals travel on unchanged (another
user's photo is NOT_FOUND, so 404)."""

from __future__ import annotations

import grpc
from fabula.media.v1 import media_pb2, media_pb2_grpc
from fabula_common.errors import Conflict, from_rpc_error

# The rendition a picture story's model looks at, and the most it reads of it.
STORY_RENDITION = "thumb_1024"
MAX_IMAGE_BYTES = 8 * 1024 * 1024
PHOTO_NOT_READY = "photo-not-ready"


class Media:
    def __init__(self, stub: media_pb2_grpc.MediaServiceStub) -> None:
        self._stub = stub

    async def require_completed(self, user_id: str, photo_id: str) -> media_pb2.Photo:
        """The user's photo, processed; NotFound (not theirs, or none),
        Conflict `photo-not-ready` while it is not completed."""
        try:
            photo = await self._stub.GetPhoto(media_pb2.PhotoRef(user_id=user_id, photo_id=photo_id))
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err) from err
        if photo.status != media_pb2.PHOTO_STATUS_COMPLETED:
            raise Conflict(
                "the photo is not processed yet (or its processing failed): "
                "record it once GET /v1/photos/{id} says completed",
                reason=PHOTO_NOT_READY,
                metadata={"photo_id": photo_id},
            )
        return photo

    async def read_image(self, user_id: str, photo_id: str) -> media_pb2.ReadPhotoResponse:
        try:
            return await self._stub.ReadPhoto(
                media_pb2.ReadPhotoRequest(
                    user_id=user_id,
                    photo_id=photo_id,
                    rendition=STORY_RENDITION,
                    max_bytes=MAX_IMAGE_BYTES,
                )
            )
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err) from err
