"""Conversations (CRUD, validation) and the database steps of answering a
message: claim the conversation, store the question, each council stage as it
completes, then the answer (or the failure) with its delivery event."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fabula.generation.v1 import council_pb2
from fabula.stories.v1 import conversations_pb2
from fabula_common.db import Database, utcnow
from fabula_common.errors import Conflict, ConversationBusy, InvalidArgument, NotFound
from fabula_common.pagination import decode_cursor, encode_cursor, page_limit
from google.protobuf import json_format
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_stories.conversations import events, plans, repository
from fabula_stories.conversations.models import (
    CONVERSATION_TITLE_MAX_LENGTH,
    MESSAGE_MAX_LENGTH,
    Conversation,
    ConversationMessage,
    MessageStatus,
)
from fabula_stories.leaving.service import refuse_deleted_reader, refuse_deleted_user
from fabula_stories.stories.events import DeliverySubjects


@dataclass(frozen=True)
class Page:
    items: Sequence[Conversation]
    counts: dict[uuid.UUID, int]
    next_cursor: str


@dataclass(frozen=True)
class Deliberation:
    """What the council is asked, under the claim of the conversation for
    the assistant message `message_id`."""

    user_id: uuid.UUID
    conversation_id: uuid.UUID
    message_id: uuid.UUID
    question: ConversationMessage
    history: list[council_pb2.ConversationTurn]
    follow_ups: list[council_pb2.FollowUpAnswer]
    want_title: bool
    # Resuming an interrupted message: the stages it stored (else None).
    stored: conversations_pb2.CouncilRecord | None = None


# --- Input -----------------------------------------------------------------------


def parse_conversation_id(value: str) -> uuid.UUID:
    # No conversation has a malformed id: asking for one finds nothing.
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound("conversation not found") from None


def parse_message_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound("message not found") from None


def validate_title(title: str) -> str:
    title = title.strip()
    if len(title) > CONVERSATION_TITLE_MAX_LENGTH:
        raise InvalidArgument(f"title must be at most {CONVERSATION_TITLE_MAX_LENGTH} characters")
    if "\x00" in title:
        raise InvalidArgument("title must not contain NUL characters")
    return title


def validate_content(content: str) -> str:
    if not content.strip():
        raise InvalidArgument("content is required")
    if len(content) > MESSAGE_MAX_LENGTH:
        raise InvalidArgument(f"content must be at most {MESSAGE_MAX_LENGTH} characters")
    if "\x00" in content:
        raise InvalidArgument("content must not contain NUL characters")
    return content


def validate_answers(questions: Sequence[str], answers: Sequence[str]) -> list[str]:
    if not questions:
        raise Conflict("no clarifying questions are waiting for answers")
    if len(answers) != len(questions):
        raise InvalidArgument(
            f"answers must answer each of the {len(questions)} questions, in order "
            f"({len(answers)} given)"
        )
    for answer in answers:
        if len(answer) > MESSAGE_MAX_LENGTH:
            raise InvalidArgument(f"an answer must be at most {MESSAGE_MAX_LENGTH} characters")
        if "\x00" in answer:
            raise InvalidArgument("answers must not contain NUL characters")
    return list(answers)


# --- Council records (the assistant message's `council` column) --------------------


def record_to_json(record: conversations_pb2.CouncilRecord) -> dict[str, Any]:
    return json_format.MessageToDict(record, preserving_proto_field_name=True)


def record_from_json(value: dict[str, Any] | None) -> conversations_pb2.CouncilRecord:
    return json_format.ParseDict(value or {}, conversations_pb2.CouncilRecord())


# --- Conversations -----------------------------------------------------------------


async def create_conversation(db: Database, user_id: uuid.UUID, title: str) -> Conversation:
    title = validate_title(title)
    async with db.session_scope() as session:
        await refuse_deleted_user(session, user_id)
        conversation = Conversation(user_id=user_id, title=title)
        session.add(conversation)
        await session.flush()
        await session.refresh(conversation)
        return conversation


async def get_conversation(
    session: AsyncSession,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
    retention_days: int = 0,
) -> Conversation:
    """The user's conversation with its messages; NotFound when it is not
    theirs or the free plan's retention hides it (see plans.py)."""
    since = await plans.visible_since(session, user_id, retention_days)
    conversation = await repository.get_conversation(
        session, user_id, conversation_id, with_messages=True, visible_since=since
    )
    if conversation is None:
        raise NotFound("conversation not found")
    return conversation


async def list_conversations(
    session: AsyncSession,
    user_id: uuid.UUID,
    limit: int,
    cursor: str,
    starred: bool | None,
    retention_days: int = 0,
) -> Page:
    limit = page_limit(limit)
    decoded = decode_cursor(cursor)
    after = None
    if decoded is not None:
        try:
            after = (decoded[0], uuid.UUID(decoded[1]))
        except ValueError:
            raise InvalidArgument("cursor is malformed") from None
    await refuse_deleted_reader(session, user_id)
    # One row more than asked tells whether another page follows.
    since = await plans.visible_since(session, user_id, retention_days)
    rows = list(
        await repository.list_conversations(session, user_id, limit + 1, after, starred, since)
    )
    items, more = rows[:limit], len(rows) > limit
    next_cursor = encode_cursor(items[-1].created_at, str(items[-1].id)) if more else ""
    counts = await repository.message_counts(session, [item.id for item in items])
    return Page(items=items, counts=counts, next_cursor=next_cursor)


async def update_conversation(
    session: AsyncSession,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
    title: str | None,
    starred: bool | None,
    retention_days: int = 0,
) -> Conversation:
    values: dict[str, Any] = {}
    if title is not None:
        values["title"] = validate_title(title)
    if starred is not None:
        values["starred"] = starred
    if not values:
        raise InvalidArgument("give a title or starred to change")
    since = await plans.visible_since(session, user_id, retention_days)
    updated = await repository.update_conversation(
        session, user_id, conversation_id, values, since
    )
    if updated is None:
        raise NotFound("conversation not found")
    return await get_conversation(session, user_id, conversation_id)


async def delete_conversation(
    session: AsyncSession,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
    retention_days: int = 0,
) -> None:
    # A message being answered meanwhile ends as discarded: its store finds
    # no message to complete (see finish).
    since = await plans.visible_since(session, user_id, retention_days)
    if not await repository.delete_conversation(session, user_id, conversation_id, since):
        raise NotFound("conversation not found")


# --- Importing ---------------------------------------------------------------------

IMPORT_SOURCE_MAX_LENGTH = 100
IMPORT_ORIGINAL_ID_MAX_LENGTH = 255


def _imported_messages(
    request: conversations_pb2.ImportConversationRequest, created_at: dt.datetime
) -> list[dict[str, Any]]:
    """The rows of the messages, oldest first. The other app kept no time per
    message: each is a microsecond after the one before, from the
    conversation's creation, so they keep their order."""
    rows = []
    for index, message in enumerate(request.messages):
        where = f"messages[{index}]"
        if message.role not in ("user", "assistant"):
            raise InvalidArgument(f'{where}.role must be "user" or "assistant"')
        if "\x00" in message.content:
            raise InvalidArgument(f"{where}.content must not contain NUL characters")
        if message.role == "user" and not message.content.strip():
            raise InvalidArgument(f"{where}.content is required")
        assistant = message.role == "assistant"
        rows.append(
            {
                "id": uuid.uuid4(),
                "role": message.role,
                "content": message.content,
                "created_at": created_at + dt.timedelta(microseconds=index),
                "status": MessageStatus.complete.value if assistant else None,
                "council": record_to_json(message.council) if assistant else None,
                "follow_ups": [
                    {"question": f.question, "answer": f.answer} for f in message.follow_ups
                ]
                if message.follow_ups and not assistant
                else None,
            }
        )
    return rows


async def import_conversation(
    session: AsyncSession, request: conversations_pb2.ImportConversationRequest
) -> tuple[uuid.UUID, bool]:
    """Store the conversation and its messages in one transaction, once per
    (user, source, original id): (its id, True), or (the id of the one
    imported before, False) with nothing changed."""
    user_id = _import_user_id(request.user_id)
    source, original_id = request.source.strip(), request.original_id.strip()
    if not source or len(source) > IMPORT_SOURCE_MAX_LENGTH:
        raise InvalidArgument(f"source is required, at most {IMPORT_SOURCE_MAX_LENGTH} characters")
    if not original_id or len(original_id) > IMPORT_ORIGINAL_ID_MAX_LENGTH:
        raise InvalidArgument(
            f"original_id is required, at most {IMPORT_ORIGINAL_ID_MAX_LENGTH} characters"
        )
    title = validate_title(request.title)
    created_at = request.created_at.ToDatetime(dt.UTC) if request.HasField("created_at") else utcnow()
    rows = _imported_messages(request, created_at)
    await refuse_deleted_user(session, user_id)
    updated_at = rows[-1]["created_at"] if rows else created_at
    conversation_id = await repository.insert_conversation_once(
        session,
        {
            "id": uuid.uuid4(),
            "user_id": user_id,
            "title": title,
            "starred": request.starred,
            "import_source": source,
            "import_original_id": original_id,
            "created_at": created_at,
            "updated_at": updated_at,
        },
    )
    if conversation_id is None:
        existing = await repository.imported_conversation_id(session, user_id, source, original_id)
        if existing is None:  # deleted between the two statements: import it afresh
            return await import_conversation(session, request)
        return existing, False
    await repository.insert_messages(
        session, [{**row, "conversation_id": conversation_id} for row in rows]
    )
    return conversation_id, True


def _import_user_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidArgument("user_id must be a UUID") from None


# --- Answering a message -----------------------------------------------------------


@dataclass(frozen=True)
class ClaimRequest:
    """Whose conversation is claimed, for which assistant message, how long."""

    subjects: DeliverySubjects
    user_id: uuid.UUID
    conversation_id: uuid.UUID
    message_id: uuid.UUID
    lease_seconds: float
    # The free plan's (see plans.py).
    retention_days: int = 0


async def _claim(session: AsyncSession, request: ClaimRequest) -> Conversation:
    r = request
    since = await plans.visible_since(session, r.user_id, r.retention_days)
    claimed = await repository.claim(
        session, r.user_id, r.conversation_id, r.message_id, r.lease_seconds, since
    )
    if claimed is None:
        found = await repository.get_conversation(
            session, r.user_id, r.conversation_id, visible_since=since
        )
        if found is None:
            raise NotFound("conversation not found")
        raise ConversationBusy("the council is answering another message of this conversation")
    conversation, _ = claimed
    # Messages whose writer stopped or died midway (their claims lapsed or
    # were released): given up now, unless it is the one being resumed.
    for interrupted in await repository.answering_messages(session, r.conversation_id):
        if interrupted != r.message_id:
            await _end_failed(
                session, r.subjects, r.user_id, r.conversation_id, interrupted, events.CLAIM_EXPIRED
            )
    return conversation


async def _deliberation(
    session: AsyncSession,
    request: ClaimRequest,
    conversation: Conversation,
    question: ConversationMessage,
    follow_ups: list[council_pb2.FollowUpAnswer],
    stored: conversations_pb2.CouncilRecord | None = None,
) -> Deliberation:
    earlier = await repository.history(session, request.conversation_id, before=question.created_at)
    return Deliberation(
        user_id=request.user_id,
        conversation_id=request.conversation_id,
        message_id=request.message_id,
        question=question,
        history=[
            council_pb2.ConversationTurn(role=message.role, content=message.content)
            for message in earlier
            if message.id != question.id
        ],
        follow_ups=follow_ups,
        want_title=not conversation.title,
        stored=stored,
    )


async def begin_message(
    session: AsyncSession, request: ClaimRequest, content: str
) -> Deliberation:
    """Claim the conversation for the assistant message and store the
    question (any questions still pending about an earlier one are dropped:
    the user asked something else)."""
    await refuse_deleted_user(session, request.user_id)
    conversation = await _claim(session, request)
    conversation.pending_questions = []
    conversation.pending_question_for = None
    question = ConversationMessage(
        conversation_id=request.conversation_id, role="user", content=content
    )
    session.add(question)
    await session.flush()
    await session.refresh(question)
    return await _deliberation(session, request, conversation, question, [])


async def begin_follow_up(
    session: AsyncSession, request: ClaimRequest, answers: Sequence[str]
) -> Deliberation:
    """Claim the conversation and store the answers to its pending questions
    on the question they are about."""
    conversation = await _claim(session, request)
    answers = validate_answers(conversation.pending_questions, answers)
    question = await repository.get_message(session, conversation.pending_question_for)
    if question is None:  # not expected: the question goes only with its conversation
        raise Conflict("the question the clarifying questions were about is gone")
    follow_ups = [
        council_pb2.FollowUpAnswer(question=q, answer=a)
        for q, a in zip(conversation.pending_questions, answers, strict=True)
    ]
    question.follow_ups = [{"question": f.question, "answer": f.answer} for f in follow_ups]
    conversation.pending_questions = []
    conversation.pending_question_for = None
    await session.flush()
    return await _deliberation(session, request, conversation, question, follow_ups)


async def begin_resume(session: AsyncSession, request: ClaimRequest) -> Deliberation:
    """Claim the conversation again for the interrupted assistant message,
    to go on from the stages it stored."""
    r = request
    since = await plans.visible_since(session, r.user_id, r.retention_days)
    if await repository.get_conversation(
        session, r.user_id, r.conversation_id, visible_since=since
    ) is None:
        raise NotFound("conversation not found")
    message = await repository.get_message(session, r.message_id)
    if message is None or message.conversation_id != r.conversation_id or message.role != "assistant":
        raise NotFound("message not found")
    if message.status != MessageStatus.answering:
        raise Conflict(f"the message is {message.status}: only an interrupted message can be resumed")
    conversation = await _claim(session, request)
    question = await repository.question_before(session, r.conversation_id, message.created_at)
    if question is None:  # not expected: an answer is stored after its question
        raise Conflict("the question of the message is gone")
    stored = record_from_json(message.council)
    return await _deliberation(
        session, request, conversation, question, list(stored.follow_ups), stored
    )


async def interrupt(
    session: AsyncSession, work: Deliberation, record: conversations_pb2.CouncilRecord
) -> None:
    """The writer stops midway (the service shuts down): keep the stages the
    message has and free the conversation, leaving the message answering, so
    it can be resumed; nothing is discarded (the next question gives it up)."""
    await store_stage(session, work.message_id, record)
    await repository.release(session, work.conversation_id, work.message_id)


async def ask_follow_up(
    session: AsyncSession, work: Deliberation, questions: Sequence[str]
) -> None:
    """Keep the chairman's clarifying questions for AnswerFollowUp and free
    the conversation (nothing was reserved: no delivery event)."""
    await repository.release(
        session,
        work.conversation_id,
        work.message_id,
        pending_questions=list(questions),
        pending_question_for=work.question.id,
    )


async def start_answer(session: AsyncSession, work: Deliberation) -> ConversationMessage:
    message = ConversationMessage(
        id=work.message_id,
        conversation_id=work.conversation_id,
        role="assistant",
        content="",
        status=MessageStatus.answering,
        council=record_to_json(conversations_pb2.CouncilRecord(follow_ups=work.follow_ups)),
    )
    session.add(message)
    await session.flush()
    return message


async def renew(session: AsyncSession, work: Deliberation, lease_seconds: float) -> bool:
    """Extend the claim; False once it is no longer this message's."""
    return await repository.renew(session, work.conversation_id, work.message_id, lease_seconds)


async def store_stage(
    session: AsyncSession, message_id: uuid.UUID, record: conversations_pb2.CouncilRecord
) -> None:
    """The council so far, kept as each stage completes: a crash loses at
    most the stage in flight."""
    await repository.update_answering(session, message_id, {"council": record_to_json(record)})


async def finish(
    session: AsyncSession,
    subjects: DeliverySubjects,
    work: Deliberation,
    record: conversations_pb2.CouncilRecord,
    title: str,
) -> ConversationMessage:
    """Store the chairman's answer, the title when the conversation has none,
    and report the generation delivered; in one transaction."""
    message = await repository.update_answering(
        session,
        work.message_id,
        {
            "content": record.chairman.text,
            "status": MessageStatus.complete,
            "council": record_to_json(record),
        },
    )
    if message is None:
        if await repository.get_message(session, work.message_id) is None:
            # The conversation was deleted meanwhile: nothing to deliver to.
            await _discard(
                session,
                subjects,
                work.user_id,
                work.conversation_id,
                work.message_id,
                events.CONVERSATION_DELETED,
            )
            raise NotFound("conversation not found")
        # Ended (and discarded) already: its claim lapsed and another took it.
        raise ConversationBusy("the council's answer came too late to be stored")
    values: dict[str, Any] = {}
    conversation = await repository.get_conversation(session, work.user_id, work.conversation_id)
    if title and conversation is not None and not conversation.title:
        values["title"] = title[:CONVERSATION_TITLE_MAX_LENGTH]
    await repository.release(session, work.conversation_id, work.message_id, **values)
    await events.message_delivered(
        session, subjects, work.user_id, work.conversation_id, work.message_id
    )
    return message


async def fail(
    session: AsyncSession,
    subjects: DeliverySubjects,
    work: Deliberation,
    record: conversations_pb2.CouncilRecord,
    reason: str,
) -> None:
    """The council gave up: the message is failed (with the stages it has),
    its generation discarded, the conversation freed."""
    await repository.update_answering(session, work.message_id, {"council": record_to_json(record)})
    await _end_failed(
        session, subjects, work.user_id, work.conversation_id, work.message_id, reason
    )
    await repository.release(session, work.conversation_id, work.message_id)


async def _end_failed(
    session: AsyncSession,
    subjects: DeliverySubjects,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
    message_id: uuid.UUID,
    reason: str,
) -> None:
    ended = await repository.update_answering(
        session, message_id, {"status": MessageStatus.failed}
    )
    # Discarded unless it ended before. A message without its row (its
    # writer died before asking the council) had nothing reserved: the
    # event is then harmless.
    if ended is not None or await repository.get_message(session, message_id) is None:
        await _discard(session, subjects, user_id, conversation_id, message_id, reason)


async def _discard(
    session: AsyncSession,
    subjects: DeliverySubjects,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
    message_id: uuid.UUID,
    reason: str,
) -> None:
    await events.message_discarded(session, subjects, user_id, conversation_id, message_id, reason)
