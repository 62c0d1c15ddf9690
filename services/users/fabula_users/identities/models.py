"""Tables of sign-in with identity providers."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import DateTime, ForeignKey, Index, String, UniqueConstraint, Uuid, func
from sqlalchemy.orm import Mapped, mapped_column

from fabula_users.accounts.models import EMAIL_MAX_LENGTH
from fabula_users.database import Base

PROVIDER_NAME_MAX_LENGTH = 64
SUBJECT_MAX_LENGTH = 255
REDIRECT_URI_MAX_LENGTH = 2000


class Identity(Base):
    """An account at an identity provider, linked to one of ours: signing in
    there signs in here."""

    __tablename__ = "identities"
    __table_args__ = (
        UniqueConstraint("provider", "subject", name="uq_identities_provider_subject"),
        Index("ix_identities_user_id", "user_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.users.id", ondelete="CASCADE")
    )
    provider: Mapped[str] = mapped_column(String(PROVIDER_NAME_MAX_LENGTH))
    subject: Mapped[str] = mapped_column(String(SUBJECT_MAX_LENGTH))
    # As the provider last reported it (empty when it shared none).
    email: Mapped[str] = mapped_column(String(EMAIL_MAX_LENGTH), server_default="")
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class PendingSignIn(Base):
    """A sign-in sent to a provider and not back yet, known by the SHA-256 of
    its state; deleted when it comes back (single use) or expires."""

    __tablename__ = "pending_sign_ins"
    __table_args__ = (Index("ix_pending_sign_ins_expires_at", "expires_at"),)

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # hex SHA-256
    provider: Mapped[str] = mapped_column(String(PROVIDER_NAME_MAX_LENGTH))
    nonce: Mapped[str] = mapped_column(String(128))
    code_verifier: Mapped[str] = mapped_column(String(128))
    redirect_uri: Mapped[str] = mapped_column(String(REDIRECT_URI_MAX_LENGTH))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
