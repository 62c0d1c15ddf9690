"""GenerationDelivered / GenerationDiscarded for council messages: the same
events (and subjects) as story segments (see stories/events.py), the message
id as the generation id (generation reserved the message under it), the
conversation as the subject. Exactly one per message: both are enqueued only
by the statement that ends the message's `answering` status."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from fabula_stories.stories import events
from fabula_stories.stories.events import DeliverySubjects

MODEL_FAILED = events.MODEL_FAILED
STORE_FAILED = events.STORE_FAILED
WRITER_STOPPED = events.WRITER_STOPPED
CLAIM_EXPIRED = events.CLAIM_EXPIRED
CONVERSATION_DELETED = "conversation-deleted"


@dataclass(frozen=True)
class _Generation:
    """What stories/events.py reads of a claim: whose generation, about what."""

    generation_id: uuid.UUID
    user_id: uuid.UUID
    story_id: uuid.UUID


async def message_delivered(
    session: AsyncSession,
    subjects: DeliverySubjects,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
    message_id: uuid.UUID,
) -> None:
    generation = _Generation(message_id, user_id, conversation_id)
    await events.generation_delivered(session, subjects, generation, message_id)  # type: ignore[arg-type]


async def message_discarded(
    session: AsyncSession,
    subjects: DeliverySubjects,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
    message_id: uuid.UUID,
    reason: str,
) -> None:
    generation = _Generation(message_id, user_id, conversation_id)
    await events.generation_discarded(session, subjects, generation, reason)  # type: ignore[arg-type]
