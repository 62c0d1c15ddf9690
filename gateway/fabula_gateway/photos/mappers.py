"""media.v1 messages as the REST API's photos."""

from __future__ import annotations

from fabula.media.v1 import media_pb2

from fabula_gateway.mappers import to_datetime
from fabula_gateway.photos.schemas import Photo, PhotoUpload, Rendition, Upload

STATUS_NAMES = {
    media_pb2.PHOTO_STATUS_PENDING: "pending",
    media_pb2.PHOTO_STATUS_UPLOADED: "uploaded",
    media_pb2.PHOTO_STATUS_PROCESSING: "processing",
    media_pb2.PHOTO_STATUS_COMPLETED: "completed",
    media_pb2.PHOTO_STATUS_FAILED: "failed",
}


def photo_from_proto(photo: media_pb2.Photo) -> Photo:
    return Photo(
        id=photo.id,
        status=STATUS_NAMES[photo.status],
        content_type=photo.content_type,
        size_bytes=photo.size_bytes,
        object_key=photo.object_key,
        failure_reason=photo.failure_reason or None,
        width=photo.width or None,
        height=photo.height or None,
        renditions=[
            Rendition(
                name=r.name,
                content_type=r.content_type,
                width=r.width,
                height=r.height,
                size_bytes=r.size_bytes,
                url=r.url or None,
            )
            for r in photo.renditions
        ],
        urls_expire_at=to_datetime(photo.urls_expire_at) if photo.HasField("urls_expire_at") else None,
        created_at=to_datetime(photo.created_at),
        updated_at=to_datetime(photo.updated_at),
        processed_at=to_datetime(photo.processed_at) if photo.HasField("processed_at") else None,
    )


def photo_upload_from_proto(created: media_pb2.CreatePhotoResponse) -> PhotoUpload:
    upload = created.upload
    return PhotoUpload(
        photo=photo_from_proto(created.photo),
        upload=Upload(
            url=upload.url,
            method=upload.method,
            headers=dict(upload.headers),
            fields=dict(upload.fields),
            expires_at=to_datetime(upload.expires_at),
        ),
    )
