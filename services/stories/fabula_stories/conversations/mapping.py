"""Conversations and messages as ConversationsService messages."""

from __future__ import annotations

import datetime as dt

from fabula.stories.v1 import conversations_pb2
from fabula_common.db import utcnow
from google.protobuf.timestamp_pb2 import Timestamp

from fabula_stories.conversations.models import (
    INTERRUPTED,
    Conversation,
    ConversationMessage,
    MessageStatus,
)
from fabula_stories.conversations.service import record_from_json


def _timestamp(moment: dt.datetime) -> Timestamp:
    timestamp = Timestamp()
    timestamp.FromDatetime(moment)
    return timestamp


def message_to_proto(
    message: ConversationMessage, conversation: Conversation | None = None
) -> conversations_pb2.Message:
    proto = conversations_pb2.Message(
        id=str(message.id),
        role=message.role,
        content=message.content,
        created_at=_timestamp(message.created_at),
        status=message_status(message, conversation),
    )
    if message.role == "assistant":
        proto.council.CopyFrom(record_from_json(message.council))
    return proto


def message_status(message: ConversationMessage, conversation: Conversation | None) -> str:
    """As stored, but an answering message no live claim holds is interrupted."""
    if message.status != MessageStatus.answering or conversation is None:
        return message.status or ""
    held = (
        conversation.writing_message_id == message.id
        and conversation.writing_until is not None
        and conversation.writing_until > utcnow()
    )
    return MessageStatus.answering.value if held else INTERRUPTED


def conversation_to_proto(
    conversation: Conversation,
    *,
    messages: list[ConversationMessage] | None = None,
    message_count: int | None = None,
) -> conversations_pb2.Conversation:
    proto = conversations_pb2.Conversation(
        id=str(conversation.id),
        user_id=str(conversation.user_id),
        title=conversation.title,
        starred=conversation.starred,
        pending_questions=conversation.pending_questions,
        created_at=_timestamp(conversation.created_at),
        updated_at=_timestamp(conversation.updated_at),
    )
    if messages is not None:
        proto.messages.extend(message_to_proto(message, conversation) for message in messages)
        proto.message_count = len(messages)
    if message_count is not None:
        proto.message_count = message_count
    return proto
