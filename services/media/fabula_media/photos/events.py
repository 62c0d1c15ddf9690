"""The photo events media publishes (fabula.media.v1 events), through the outbox."""

from __future__ import annotations

import uuid

from fabula.media.v1 import events_pb2
from fabula_common.db import utcnow
from fabula_common.messaging.outbox import enqueue
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_media.database import outbox
from fabula_media.photos.models import Photo


class Subjects:
    """The subjects of media's events under this deployment's prefix."""

    def __init__(self, settings) -> None:
        from fabula_common.messaging.bus import subject_for

        self.uploaded = subject_for(settings, "media", "photo_uploaded")
        self.processed = subject_for(settings, "media", "photo_processed")
        self.deleted = subject_for(settings, "media", "photo_deleted")


def _stamped(message):
    message.event_id = str(uuid.uuid4())
    message.occurred_at.FromDatetime(utcnow())
    return message


async def photo_uploaded(session: AsyncSession, subjects: Subjects, photo: Photo) -> None:
    event = _stamped(events_pb2.PhotoUploaded(photo_id=str(photo.id), user_id=str(photo.user_id)))
    await enqueue(session, outbox, subjects.uploaded, event)


async def photo_processed(session: AsyncSession, subjects: Subjects, photo: Photo) -> None:
    event = _stamped(
        events_pb2.PhotoProcessed(
            photo_id=str(photo.id),
            user_id=str(photo.user_id),
            status=photo.status,
            failure_reason=photo.failure_reason or "",
        )
    )
    await enqueue(session, outbox, subjects.processed, event)


async def photo_deleted(session: AsyncSession, subjects: Subjects, photo_id, user_id) -> None:
    event = _stamped(events_pb2.PhotoDeleted(photo_id=str(photo_id), user_id=str(user_id)))
    await enqueue(session, outbox, subjects.deleted, event)
