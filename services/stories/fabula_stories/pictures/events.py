"""What stories does when media deletes a photo (PhotoDeleted)."""

from __future__ import annotations

import logging
import uuid

from fabula.media.v1 import events_pb2 as media_events
from fabula_common.db import utcnow
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_stories.pictures import repository

log = logging.getLogger(__name__)


async def forget_photo(session: AsyncSession, event: media_events.PhotoDeleted) -> None:
    """An edit made of the photo goes; a drawing whose upload it was stays
    (with its edits and stories, which are the user's text) and says its
    photo is no longer available. Idempotent."""
    try:
        user_id = uuid.UUID(event.user_id)
    except ValueError:
        log.error("photo-deleted event %s dropped: user_id %r is not a UUID", event.event_id, event.user_id)
        return
    marked = await repository.photo_deleted(session, user_id, event.photo_id, utcnow())
    if marked:
        log.info("photo %s deleted: %d drawings have no image now", event.photo_id, marked)
