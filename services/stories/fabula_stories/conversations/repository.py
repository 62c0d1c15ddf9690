"""Queries of conversations and their messages. Every read and write of a
conversation names the user: another user's conversation is simply not found."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from fabula_stories.conversations.models import (
    Conversation,
    ConversationMessage,
    MessageStatus,
)


def _visible(since: dt.datetime | None) -> list:
    """The free plan's retention (see plans.py): conversations created since."""
    return [] if since is None else [Conversation.created_at >= since]


async def get_conversation(
    session: AsyncSession,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
    *,
    with_messages: bool = False,
    for_update: bool = False,
    visible_since: dt.datetime | None = None,
) -> Conversation | None:
    query = select(Conversation).where(
        Conversation.id == conversation_id,
        Conversation.user_id == user_id,
        *_visible(visible_since),
    )
    if with_messages:
        query = query.options(selectinload(Conversation.messages))
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def list_conversations(
    session: AsyncSession,
    user_id: uuid.UUID,
    limit: int,
    after: tuple[dt.datetime, uuid.UUID] | None,
    starred: bool | None,
    visible_since: dt.datetime | None = None,
) -> Sequence[Conversation]:
    query = (
        select(Conversation)
        .where(Conversation.user_id == user_id, *_visible(visible_since))
        .order_by(Conversation.created_at.desc(), Conversation.id.desc())
        .limit(limit)
    )
    if starred is not None:
        query = query.where(Conversation.starred.is_(starred))
    if after is not None:
        # A row comparison, so Postgres walks ix_conversations_user_id_created_at_id.
        query = query.where(tuple_(Conversation.created_at, Conversation.id) < tuple_(*after))
    return list((await session.execute(query)).scalars())


async def message_counts(
    session: AsyncSession, conversation_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    if not conversation_ids:
        return {}
    query = (
        select(ConversationMessage.conversation_id, func.count())
        .where(ConversationMessage.conversation_id.in_(conversation_ids))
        .group_by(ConversationMessage.conversation_id)
    )
    return {conversation_id: count for conversation_id, count in await session.execute(query)}


async def update_conversation(
    session: AsyncSession,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
    values: dict[str, Any],
    visible_since: dt.datetime | None = None,
) -> Conversation | None:
    query = (
        update(Conversation)
        .where(
            Conversation.id == conversation_id,
            Conversation.user_id == user_id,
            *_visible(visible_since),
        )
        .values(**values, updated_at=func.now())
        .returning(Conversation)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def delete_conversation(
    session: AsyncSession,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
    visible_since: dt.datetime | None = None,
) -> bool:
    """Delete the conversation (its messages go by ON DELETE CASCADE); False when absent."""
    query = (
        delete(Conversation)
        .where(
            Conversation.id == conversation_id,
            Conversation.user_id == user_id,
            *_visible(visible_since),
        )
        .returning(Conversation.id)
    )
    return (await session.execute(query)).scalar_one_or_none() is not None


async def delete_conversations_of(session: AsyncSession, user_id: uuid.UUID) -> int:
    deleted = await session.execute(
        delete(Conversation).where(Conversation.user_id == user_id).returning(Conversation.id)
    )
    return len(deleted.all())


async def claim(
    session: AsyncSession,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
    message_id: uuid.UUID,
    lease_seconds: float,
    visible_since: dt.datetime | None = None,
) -> tuple[Conversation, uuid.UUID | None] | None:
    """Take the conversation's write lease for `message_id` when it is free
    (or its holder stopped renewing it); the conversation and the message the
    lapsed lease was for, or None when it is held (or not the user's)."""
    conversation = await get_conversation(
        session, user_id, conversation_id, for_update=True, visible_since=visible_since
    )
    if conversation is None:
        return None
    now = await session.scalar(select(func.now()))
    if conversation.writing_until is not None and conversation.writing_until > now:
        return None
    lapsed = conversation.writing_message_id
    conversation.writing_message_id = message_id
    conversation.writing_until = now + dt.timedelta(seconds=lease_seconds)
    conversation.updated_at = now
    await session.flush()
    return conversation, lapsed


async def renew(
    session: AsyncSession, conversation_id: uuid.UUID, message_id: uuid.UUID, lease_seconds: float
) -> bool:
    query = (
        update(Conversation)
        .where(
            Conversation.id == conversation_id, Conversation.writing_message_id == message_id
        )
        .values(writing_until=func.now() + dt.timedelta(seconds=lease_seconds))
        .returning(Conversation.id)
    )
    return (await session.execute(query)).scalar_one_or_none() is not None


async def release(
    session: AsyncSession, conversation_id: uuid.UUID, message_id: uuid.UUID, **values: Any
) -> Conversation | None:
    query = (
        update(Conversation)
        .where(
            Conversation.id == conversation_id,
            or_(
                Conversation.writing_message_id == message_id,
                Conversation.writing_message_id.is_(None),
            ),
        )
        .values(writing_until=None, writing_message_id=None, updated_at=func.now(), **values)
        .returning(Conversation)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def history(
    session: AsyncSession, conversation_id: uuid.UUID, before: dt.datetime | None = None
) -> Sequence[ConversationMessage]:
    """The turns a council sees: questions and complete answers, oldest first."""
    query = (
        select(ConversationMessage)
        .where(
            ConversationMessage.conversation_id == conversation_id,
            or_(
                ConversationMessage.role == "user",
                ConversationMessage.status == MessageStatus.complete,
            ),
        )
        .order_by(ConversationMessage.created_at, ConversationMessage.id)
    )
    if before is not None:
        query = query.where(ConversationMessage.created_at < before)
    return list((await session.execute(query)).scalars())


async def get_message(
    session: AsyncSession, message_id: uuid.UUID
) -> ConversationMessage | None:
    return await session.get(ConversationMessage, message_id)


async def update_answering(
    session: AsyncSession, message_id: uuid.UUID, values: dict[str, Any]
) -> ConversationMessage | None:
    """Change an assistant message still being answered; None once it is
    complete or failed (so a message ends exactly once)."""
    query = (
        update(ConversationMessage)
        .where(
            ConversationMessage.id == message_id,
            ConversationMessage.status == MessageStatus.answering,
        )
        .values(**values)
        .returning(ConversationMessage)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def insert_conversation_once(
    session: AsyncSession, values: dict[str, Any]
) -> uuid.UUID | None:
    """Insert an imported conversation unless the user has one with its
    (import_source, import_original_id): its id, or None when it was there
    (the unique index decides a concurrent import, not a prior read)."""
    statement = (
        pg_insert(Conversation)
        .values(**values)
        .on_conflict_do_nothing(
            index_elements=[
                Conversation.user_id, Conversation.import_source, Conversation.import_original_id
            ],
            index_where=Conversation.import_source.is_not(None),
        )
        .returning(Conversation.id)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def imported_conversation_id(
    session: AsyncSession, user_id: uuid.UUID, source: str, original_id: str
) -> uuid.UUID | None:
    return await session.scalar(
        select(Conversation.id).where(
            Conversation.user_id == user_id,
            Conversation.import_source == source,
            Conversation.import_original_id == original_id,
        )
    )


async def insert_messages(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(ConversationMessage), list(rows))


async def answering_messages(
    session: AsyncSession, conversation_id: uuid.UUID
) -> list[uuid.UUID]:
    query = select(ConversationMessage.id).where(
        ConversationMessage.conversation_id == conversation_id,
        ConversationMessage.status == MessageStatus.answering,
    )
    return list((await session.execute(query)).scalars())


async def question_before(
    session: AsyncSession, conversation_id: uuid.UUID, before: dt.datetime
) -> ConversationMessage | None:
    """The latest question asked before `before` (the one an answer answers)."""
    query = (
        select(ConversationMessage)
        .where(
            ConversationMessage.conversation_id == conversation_id,
            ConversationMessage.role == "user",
            ConversationMessage.created_at <= before,
        )
        .order_by(ConversationMessage.created_at.desc(), ConversationMessage.id.desc())
        .limit(1)
    )
    return (await session.execute(query)).scalar_one_or_none()
