"""The events stories publishes about the generations it asks for: exactly one
of GenerationDelivered (its segment was stored) and GenerationDiscarded (it
never will be) per generation id. Billing counts a generation against the plan
only on GenerationDelivered. Enqueued in the outbox, in the transaction that
takes the generation's claim (see repository.take_pending)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from fabula.stories.v1 import events_pb2
from fabula_common.db import utcnow
from fabula_common.messaging.bus import subject_for
from fabula_common.messaging.outbox import enqueue
from fabula_common.settings import CommonSettings
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_stories.database import outbox
from fabula_stories.stories.models import PendingGeneration

# Why a generation was discarded (GenerationDiscarded.reason, for logs).
MODEL_FAILED = "model-failed"
STORY_DELETED = "story-deleted"
STORY_COMPLETE = "story-complete"
STORE_FAILED = "store-failed"
WRITER_STOPPED = "writer-stopped"
CLAIM_EXPIRED = "claim-expired"
WRITER_RESTARTED = "writer-restarted"


@dataclass(frozen=True)
class DeliverySubjects:
    delivered: str
    discarded: str

    @classmethod
    def for_settings(cls, settings: CommonSettings) -> DeliverySubjects:
        return cls(
            delivered=subject_for(settings, "stories", "generation_delivered"),
            discarded=subject_for(settings, "stories", "generation_discarded"),
        )


def _now() -> Timestamp:
    timestamp = Timestamp()
    timestamp.FromDatetime(utcnow())
    return timestamp


async def generation_delivered(
    session: AsyncSession,
    subjects: DeliverySubjects,
    claim: PendingGeneration,
    segment_id: uuid.UUID,
) -> None:
    await enqueue(
        session,
        outbox,
        subjects.delivered,
        events_pb2.GenerationDelivered(
            event_id=str(uuid.uuid4()),
            generation_id=str(claim.generation_id),
            user_id=str(claim.user_id),
            story_id=str(claim.story_id),
            segment_id=str(segment_id),
            occurred_at=_now(),
        ),
    )


async def generation_discarded(
    session: AsyncSession, subjects: DeliverySubjects, claim: PendingGeneration, reason: str
) -> None:
    await enqueue(
        session,
        outbox,
        subjects.discarded,
        events_pb2.GenerationDiscarded(
            event_id=str(uuid.uuid4()),
            generation_id=str(claim.generation_id),
            user_id=str(claim.user_id),
            story_id=str(claim.story_id),
            reason=reason,
            occurred_at=_now(),
        ),
    )
