"""The UserDeleted handler: the user's generation records are deleted.

The usage they reported has been settled in billing already (its ledger keeps
it, anonymised). A call still running at that moment finds its row gone when
it ends and reports nothing: the user is gone, and so is their account in
billing.
"""

from __future__ import annotations

import logging
import uuid

from fabula.users.v1 import events_pb2 as users_events
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_generation.generations.models import Generation
from fabula_generation.suggestions.repository import delete_user_windows

log = logging.getLogger(__name__)


async def delete_user_generations(
    session: AsyncSession, event: users_events.UserDeleted
) -> None:
    try:
        user_id = str(uuid.UUID(event.user_id))
    except ValueError:
        log.error(
            "user-deleted event %s dropped: user_id %r is not a UUID", event.event_id, event.user_id
        )
        return
    deleted = await session.execute(delete(Generation).where(Generation.user_id == user_id))
    await delete_user_windows(session, user_id)
    log.info("user %s deleted: %d generation records removed", user_id, deleted.rowcount or 0)
