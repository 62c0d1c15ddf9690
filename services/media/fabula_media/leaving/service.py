"""The UserDeleted handler: the user's photos, their renditions and every
object under the user's prefix are deleted. Objects go first: should storage
fail, the event is redelivered and finds the rows still there (deleting is
idempotent). A worker finishing a photo of the user meanwhile finds the row
gone and removes what it wrote."""

from __future__ import annotations

import logging
import uuid

from fabula.users.v1 import events_pb2 as users_events
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_media.photos.models import Photo
from fabula_media.photos.service import user_prefix
from fabula_media.storage import Storage

log = logging.getLogger(__name__)


def user_photos_deleter(storage: Storage):
    async def delete_user_photos(session: AsyncSession, event: users_events.UserDeleted) -> None:
        try:
            user_id = uuid.UUID(event.user_id)
        except ValueError:
            log.error("user-deleted event %s dropped: user_id %r is not a UUID",
                      event.event_id, event.user_id)
            return
        await storage.delete_prefix(user_prefix(user_id))
        deleted = await session.execute(delete(Photo).where(Photo.user_id == user_id))
        log.info("user %s deleted: %d photos removed", user_id, deleted.rowcount or 0)

    return delete_user_photos
