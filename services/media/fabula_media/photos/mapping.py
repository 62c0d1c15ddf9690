"""Photos as fabula.media.v1 messages."""

from __future__ import annotations

from fabula.media.v1 import media_pb2

from fabula_media.photos.models import Photo, PhotoStatus
from fabula_media.storage import UploadTarget

STATUSES = {
    PhotoStatus.pending: media_pb2.PHOTO_STATUS_PENDING,
    PhotoStatus.uploaded: media_pb2.PHOTO_STATUS_UPLOADED,
    PhotoStatus.processing: media_pb2.PHOTO_STATUS_PROCESSING,
    PhotoStatus.completed: media_pb2.PHOTO_STATUS_COMPLETED,
    PhotoStatus.failed: media_pb2.PHOTO_STATUS_FAILED,
}


def photo_to_proto(photo: Photo, urls: dict[str, str] | None = None, urls_expire_at=None) -> media_pb2.Photo:
    urls = urls or {}
    message = media_pb2.Photo(
        id=str(photo.id),
        user_id=str(photo.user_id),
        status=STATUSES[PhotoStatus(photo.status)],
        content_type=photo.content_type,
        size_bytes=photo.size_bytes,
        object_key=photo.object_key,
        failure_reason=photo.failure_reason or "",
        width=photo.width or 0,
        height=photo.height or 0,
        renditions=[
            media_pb2.Rendition(
                name=rendition.name,
                content_type=rendition.content_type,
                width=rendition.width,
                height=rendition.height,
                size_bytes=rendition.size_bytes,
                url=urls.get(rendition.name, ""),
            )
            for rendition in photo.renditions
        ],
    )
    message.created_at.FromDatetime(photo.created_at)
    message.updated_at.FromDatetime(photo.updated_at)
    if photo.processed_at is not None:
        message.processed_at.FromDatetime(photo.processed_at)
    if urls_expire_at is not None:
        message.urls_expire_at.FromDatetime(urls_expire_at)
    return message


def upload_to_proto(upload: UploadTarget) -> media_pb2.Upload:
    message = media_pb2.Upload(
        url=upload.url, method=upload.method, headers=upload.headers, fields=upload.fields
    )
    message.expires_at.FromDatetime(upload.expires_at)
    return message
