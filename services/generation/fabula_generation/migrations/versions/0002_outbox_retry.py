"""Outbox retries: a row that fails is retried on its own schedule and parked
after too many attempts (fabula_common.messaging.outbox).

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-03
"""

from __future__ import annotations

from collections.abc import Sequence

from fabula_common.messaging.migrations import add_outbox_retries, remove_outbox_retries

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "generation"


def upgrade() -> None:
    add_outbox_retries(SCHEMA)


def downgrade() -> None:
    remove_outbox_retries(SCHEMA)
