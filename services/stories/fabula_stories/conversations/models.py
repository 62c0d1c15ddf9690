"""Council conversations and their messages."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from fabula_common.db import utcnow
from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, String, Text, Uuid, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fabula_stories.database import Base

CONVERSATION_TITLE_MAX_LENGTH = 200
MESSAGE_MAX_LENGTH = 8_000


class MessageStatus(enum.StrEnum):
    # Assistant messages only: the council is at work, done, or gave up.
    # An answering message whose writer stopped or died (no live claim holds
    # it) is shown as interrupted and can be resumed.
    answering = "answering"
    complete = "complete"
    failed = "failed"


INTERRUPTED = "interrupted"


class Conversation(Base):
    __tablename__ = "conversations"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    title: Mapped[str] = mapped_column(
        String(CONVERSATION_TITLE_MAX_LENGTH), default="", server_default=""
    )
    starred: Mapped[bool] = mapped_column(default=False, server_default="false")
    # Clarifying questions waiting for AnswerFollowUp, about the user message
    # `pending_question_for`.
    pending_questions: Mapped[list[str]] = mapped_column(
        ARRAY(Text), default=list, server_default="{}"
    )
    pending_question_for: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # The write lease: one message is answered at a time (the assistant
    # message `writing_message_id`, until `writing_until` unless renewed).
    writing_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    writing_message_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    # Imported conversations: where from (e.g. "llm-council") and their id
    # there, so an import runs once per (user, source, original id).
    import_source: Mapped[str | None] = mapped_column(String(100))
    import_original_id: Mapped[str | None] = mapped_column(String(255))

    messages: Mapped[list[ConversationMessage]] = relationship(
        order_by="(ConversationMessage.created_at, ConversationMessage.id)",
        lazy="raise",
        passive_deletes=True,
    )


class ConversationMessage(Base):
    __tablename__ = "conversation_messages"
    __table_args__ = (
        CheckConstraint("role IN ('user', 'assistant')", name="role_known"),
        CheckConstraint(
            "status IS NULL OR status IN ('answering', 'complete', 'failed')",
            name="status_known",
        ),
        Index("ix_conversation_messages_conversation_id_created_at", "conversation_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("stories.conversations.id", ondelete="CASCADE")
    )
    role: Mapped[str] = mapped_column(String(10))
    content: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Assistant messages: the CouncilRecord (protobuf JSON), each stage
    # written as it completes.
    council: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # User messages: the answers to the clarifying questions about them
    # ([{question, answer}]).
    follow_ups: Mapped[list[dict[str, str]] | None] = mapped_column(JSONB)
    status: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )


class UserPlan(Base):
    """Each user's billing plan as billing's PlanChanged events told it (free
    when no event came): which conversations the free plan's retention hides.
    Stories never reads billing's schema."""

    __tablename__ = "user_plans"
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    plan: Mapped[str] = mapped_column(String(100))
    # The event's occurred_at: an older event arriving late changes nothing.
    changed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


# Imports find what they imported before (and the unique index decides a race).
Index(
    "uq_conversations_import",
    Conversation.user_id,
    Conversation.import_source,
    Conversation.import_original_id,
    unique=True,
    postgresql_where=Conversation.import_source.is_not(None),
)

# Lists walk it, newest first.
Index(
    "ix_conversations_user_id_created_at_id",
    Conversation.user_id,
    Conversation.created_at.desc(),
    Conversation.id.desc(),
)
