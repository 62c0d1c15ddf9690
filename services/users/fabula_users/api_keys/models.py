"""API keys: secrets for scripts, known only by their SHA-256."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ARRAY, DateTime, ForeignKey, Index, String, Uuid, func
from sqlalchemy.orm import Mapped, mapped_column

from fabula_users.database import Base

API_KEY_NAME_MAX_LENGTH = 100


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_user_id", "user_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.users.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(API_KEY_NAME_MAX_LENGTH))
    # The key's public part ("fab_" + lookup id): shown in lists, and how a
    # presented key finds its row before its hash is compared.
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))  # hex SHA-256 of the whole key
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(16)))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
