"""Leaving: a user's stories for their export, and the UserDeleted handler.

On UserDeleted every story (segments cascade), pending generation,
Idempotency-Key, project and narrative of the user is deleted and a tombstone written, in one
transaction with the event's inbox row. A story being written at that moment
finds its claim gone and stores nothing (its generation is discarded).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterator

from fabula.users.v1 import events_pb2 as users_events
from fabula_common.db import Database
from fabula_common.errors import Unauthenticated
from fabula_common.tombstones import is_deleted, record_deletion, was_deleted
from sqlalchemy import delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_stories.conversations.plans import forget_plan
from fabula_stories.conversations.repository import delete_conversations_of
from fabula_stories.database import deleted_users
from fabula_stories.idempotency.models import IdempotencyKey
from fabula_stories.pictures.repository import delete_pictures_of
from fabula_stories.projects.repository import delete_projects_of
from fabula_stories.stories.models import PendingGeneration, Segment, Story

log = logging.getLogger(__name__)

# Stories read per query while exporting, so a prolific writer's export
# streams in bounded memory.
EXPORT_BATCH = 50


def account_deleted() -> Unauthenticated:
    return Unauthenticated("the account was deleted", reason="account-deleted")


async def refuse_deleted_user(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Before anything is created for the user: UNAUTHENTICATED once the
    account is deleted (an access token outlives its account by minutes)."""
    if await is_deleted(session, deleted_users, user_id):
        raise account_deleted()


async def refuse_deleted_reader(session: AsyncSession, user_id: uuid.UUID) -> None:
    if await was_deleted(session, deleted_users, user_id):
        raise account_deleted()


async def export_stories(
    db: Database, user_id: uuid.UUID
) -> AsyncIterator[tuple[Story, list[Segment]]]:
    """Every story of the user with its segments, oldest first, a batch of
    stories per transaction (keyset on created_at, id)."""
    after: tuple[dt.datetime, uuid.UUID] | None = None
    while True:
        async with db.session_scope() as session:
            query = (
                select(Story)
                .where(Story.user_id == user_id)
                .order_by(Story.created_at, Story.id)
                .limit(EXPORT_BATCH)
            )
            if after is not None:
                query = query.where(tuple_(Story.created_at, Story.id) > tuple_(*after))
            stories = list((await session.execute(query)).scalars())
            if not stories:
                return
            ids = [story.id for story in stories]
            segments = (
                await session.execute(
                    select(Segment)
                    .where(Segment.story_id.in_(ids))
                    .order_by(Segment.story_id, Segment.position)
                )
            ).scalars()
            by_story: dict[uuid.UUID, list[Segment]] = {story_id: [] for story_id in ids}
            for segment in segments:
                by_story[segment.story_id].append(segment)
        for story in stories:
            yield story, by_story[story.id]
        if len(stories) < EXPORT_BATCH:
            return
        after = (stories[-1].created_at, stories[-1].id)


async def delete_user_data(session: AsyncSession, event: users_events.UserDeleted) -> None:
    """The UserDeleted handler. Idempotent (and the inbox skips a repeat)."""
    try:
        user_id = uuid.UUID(event.user_id)
    except ValueError:
        log.error("user-deleted event %s dropped: user_id %r is not a UUID",
                  event.event_id, event.user_id)
        return
    await record_deletion(session, deleted_users, user_id)
    # Stories first: a claim being taken on one of them holds its row, so
    # this waits for it and the pending row it inserted is committed (and
    # deleted below) by the time the next statement looks.
    stories = await session.execute(
        delete(Story).where(Story.user_id == user_id).returning(Story.id)
    )
    pending = await session.execute(
        delete(PendingGeneration).where(PendingGeneration.user_id == user_id)
    )
    keys = await session.execute(delete(IdempotencyKey).where(IdempotencyKey.user_id == user_id))
    projects = await delete_projects_of(session, user_id)
    conversations = await delete_conversations_of(session, user_id)
    await forget_plan(session, user_id)
    drawings = await delete_pictures_of(session, user_id)
    log.info(
        "user %s deleted: %d stories, %d pending generations, %d idempotency keys, "
        "%d projects (with their narratives), %d conversations, %d drawings removed",
        user_id,
        len(stories.all()),
        pending.rowcount or 0,
        keys.rowcount or 0,
        projects,
        conversations,
        drawings,
    )
