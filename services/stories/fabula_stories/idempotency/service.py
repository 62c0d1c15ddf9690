"""Idempotency-Keys of the requests that write a segment, as Stripe does: a
retry with the same key and request answers with the first request's result
and costs nothing more; the key with another request is refused.

A request with a key is recorded, unfinished, in the transaction that claims
its generation, before any model call (so a retry while it runs is told so
instead of writing again), and finished in the transaction that stores its
segment. A request that failed stored nothing and discarded its claim: its
key is free again. The key is known only by its SHA-256, the request by an
HMAC under the key; both are remembered for 24 hours, per user.
Takes a session; never commits (the caller's transaction scope does)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import uuid
from dataclasses import dataclass
from enum import StrEnum

from fabula_common.db import utcnow
from fabula_common.errors import (
    IdempotencyKeyInProgress,
    IdempotencyKeyReused,
    InvalidArgument,
    NotFound,
)
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_stories.idempotency import repository
from fabula_stories.idempotency.models import IdempotencyKey
from fabula_stories.stories.models import Segment

log = logging.getLogger(__name__)

KEY_MAX_LENGTH = 255
# How long a key is remembered (as Stripe does).
KEY_TTL = dt.timedelta(hours=24)

JsonValue = str | int | bool | None | list[str]


class Operation(StrEnum):
    create_story = "create-story"
    continue_story = "continue-story"
    end_story = "end-story"


@dataclass(frozen=True)
class KeyedRequest:
    """A request made with an Idempotency-Key: the key's hash and the
    request's fingerprint, never the key itself."""

    user_id: uuid.UUID
    operation: Operation
    key_hash: str
    request_hash: str


@dataclass(frozen=True)
class FirstAnswer:
    """What the first request with the key stored."""

    story_id: uuid.UUID
    segment_id: uuid.UUID


def keyed_request(
    user_id: uuid.UUID, idempotency_key: str, operation: Operation, fields: list[JsonValue]
) -> KeyedRequest | None:
    """The request's key and fingerprint (of the operation and its validated
    `fields`); None without a key."""
    if not idempotency_key:
        return None
    if len(idempotency_key) > KEY_MAX_LENGTH:
        raise InvalidArgument(f"idempotency_key: must be at most {KEY_MAX_LENGTH} characters")
    key = idempotency_key.encode()
    canonical = json.dumps([operation.value, *fields], separators=(",", ":")).encode()
    return KeyedRequest(
        user_id=user_id,
        operation=operation,
        key_hash=hashlib.sha256(key).hexdigest(),
        # Keyed by the idempotency key: the stored value says nothing about
        # the request to whoever does not hold the key.
        request_hash=hmac.new(key, canonical, "sha256").hexdigest(),
    )


def _reused(request: KeyedRequest) -> IdempotencyKeyReused:
    return IdempotencyKeyReused(
        f"idempotency_key: already used for a different request ({request.operation})"
    )


async def begin(
    session: AsyncSession,
    request: KeyedRequest,
    *,
    generation_id: uuid.UUID,
    story_id: uuid.UUID,
) -> FirstAnswer | None:
    """Record `request` as under way with `generation_id`, in the transaction
    that claims that generation; or, for a retry, the first request's answer.
    Raises IdempotencyKeyReused when the key came with another request, and
    IdempotencyKeyInProgress while the first request is still running."""
    now = utcnow()
    record = IdempotencyKey(
        user_id=request.user_id,
        key_hash=request.key_hash,
        operation=request.operation.value,
        request_hash=request.request_hash,
        generation_id=generation_id,
        story_id=story_id,
        created_at=now,
        expires_at=now + KEY_TTL,
    )
    # Twice at most: the record found may be purged before it can be locked.
    for _ in range(2):
        if await repository.insert_new(session, record):
            return None
        earlier = await repository.lock(session, request.user_id, request.key_hash)
        if earlier is None:
            continue
        if earlier.expires_at > now and not await _failed(session, earlier):
            if not hmac.compare_digest(earlier.request_hash, request.request_hash):
                raise _reused(request)
            if earlier.segment_id is None:
                raise IdempotencyKeyInProgress(
                    "idempotency_key: the first request with this key is still being "
                    "processed; retry shortly to get its answer"
                )
            return FirstAnswer(story_id=earlier.story_id, segment_id=earlier.segment_id)
        # Expired, or its request failed and stored nothing: the key is free.
        for name in ("operation", "request_hash", "generation_id", "story_id"):
            setattr(earlier, name, getattr(record, name))
        earlier.segment_id = None
        earlier.created_at, earlier.expires_at = record.created_at, record.expires_at
        await session.flush()
        return None
    raise IdempotencyKeyInProgress("idempotency_key: the key is being replaced; retry shortly")


async def _failed(session: AsyncSession, record: IdempotencyKey) -> bool:
    """An unfinished record whose generation's claim is gone: discarded
    without a segment (storing would have finished the record in the same
    transaction)."""
    return record.segment_id is None and not await repository.claim_pending(
        session, record.generation_id
    )


async def finish(
    session: AsyncSession,
    request: KeyedRequest | None,
    generation_id: uuid.UUID,
    segment_id: uuid.UUID,
) -> None:
    """Record the segment `request` stored, in the transaction storing it."""
    if request is None:
        return
    if not await repository.finish(
        session, request.user_id, request.key_hash, generation_id, segment_id
    ):
        # Only if the record was purged while the request ran (24 hours).
        log.warning("the idempotency key of generation %s was gone when it finished", generation_id)


async def stored_segment(session: AsyncSession, user_id: uuid.UUID, answer: FirstAnswer) -> Segment:
    """The segment the first request stored; NotFound once its story is deleted."""
    segment = await repository.get_segment(session, user_id, answer.segment_id)
    if segment is None:
        raise NotFound("story not found")
    return segment


async def purge_expired(session: AsyncSession, limit: int) -> int:
    """Delete up to `limit` expired keys; how many."""
    return await repository.delete_expired(session, utcnow(), limit)
