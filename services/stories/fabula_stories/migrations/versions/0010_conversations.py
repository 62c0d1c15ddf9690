"""Council conversations and their messages.

Revision ID: 0010_conversations
Revises: 0009_narratives
Create Date: 2026-12-14
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010_conversations"
down_revision: str | None = "0009_narratives"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "stories"


def _created_at(name: str = "created_at") -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(200), nullable=False, server_default=""),
        sa.Column("starred", sa.Boolean(), nullable=False, server_default="false"),
        sa.Column(
            "pending_questions", postgresql.ARRAY(sa.Text()), nullable=False, server_default="{}"
        ),
        sa.Column("pending_question_for", sa.Uuid()),
        sa.Column("writing_until", sa.DateTime(timezone=True)),
        sa.Column("writing_message_id", sa.Uuid()),
        _created_at(),
        _created_at("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_conversations"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_conversations_user_id_created_at_id",
        "conversations",
        ["user_id", sa.text("created_at DESC"), sa.text("id DESC")],
        schema=SCHEMA,
    )
    op.create_table(
        "conversation_messages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(10), nullable=False),
        sa.Column("content", sa.Text(), nullable=False, server_default=""),
        sa.Column("council", postgresql.JSONB()),
        sa.Column("follow_ups", postgresql.JSONB()),
        sa.Column("status", sa.String(10)),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_conversation_messages"),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            [f"{SCHEMA}.conversations.id"],
            ondelete="CASCADE",
            name="fk_conversation_messages_conversation_id_conversations",
        ),
        sa.CheckConstraint(
            "role IN ('user', 'assistant')", name="ck_conversation_messages_role_known"
        ),
        sa.CheckConstraint(
            "status IS NULL OR status IN ('answering', 'complete', 'failed')",
            name="ck_conversation_messages_status_known",
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_conversation_messages_conversation_id_created_at",
        "conversation_messages",
        ["conversation_id", "created_at"],
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("conversation_messages", schema=SCHEMA)
    op.drop_table("conversations", schema=SCHEMA)
