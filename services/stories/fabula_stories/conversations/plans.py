"""The free plan's retention of conversations.

On the free plan, conversations created more than COUNCIL_FREE_RETENTION_DAYS
ago are hidden (never deleted); on any other plan every conversation shows.
Stories learns each user's plan from billing's PlanChanged events (admin or
Stripe) through an idempotent consumer and keeps it in `user_plans`; a user
no event has come for is on the free plan (billing's default). Hiding is
decided at read time, from the stored plan and the conversation's age: an
upgrade restores everything the moment its event is applied, and a
downgrade hides again, with no sweep to run or to fall behind.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from fabula.billing.v1 import events_pb2 as billing_events
from fabula_common.db import utcnow
from fabula_common.tombstones import is_deleted
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_stories.conversations.models import UserPlan
from fabula_stories.database import deleted_users

log = logging.getLogger(__name__)

# Billing's default plan: the one whose conversations expire.
FREE_PLAN = "free"


async def record_plan(session: AsyncSession, event: billing_events.PlanChanged) -> None:
    """The PlanChanged handler: keep the user's newest plan. Idempotent, and
    an older event delivered after a newer one changes nothing."""
    try:
        user_id = uuid.UUID(event.user_id)
    except ValueError:
        log.error("plan-changed event %s dropped: user %r is not a UUID",
                  event.event_id, event.user_id)
        return
    # A plan of a deleted user (an event late after their deletion) is not kept.
    if await is_deleted(session, deleted_users, user_id):
        return
    changed_at = event.occurred_at.ToDatetime(dt.UTC) if event.HasField("occurred_at") else utcnow()
    statement = insert(UserPlan).values(user_id=user_id, plan=event.plan, changed_at=changed_at)
    statement = statement.on_conflict_do_update(
        index_elements=[UserPlan.user_id],
        set_={"plan": statement.excluded.plan, "changed_at": statement.excluded.changed_at},
        where=UserPlan.changed_at <= statement.excluded.changed_at,
    )
    await session.execute(statement)


async def visible_since(
    session: AsyncSession, user_id: uuid.UUID, retention_days: int
) -> dt.datetime | None:
    """The oldest creation time of the user's conversations that show, or
    None when all do (a paid plan, or no retention configured)."""
    if retention_days <= 0:
        return None
    plan = await session.scalar(select(UserPlan.plan).where(UserPlan.user_id == user_id))
    if plan is not None and plan != FREE_PLAN:
        return None
    return utcnow() - dt.timedelta(days=retention_days)


async def forget_plan(session: AsyncSession, user_id: uuid.UUID) -> None:
    """A deleted user's plan goes with their data."""
    await session.execute(UserPlan.__table__.delete().where(UserPlan.user_id == user_id))
