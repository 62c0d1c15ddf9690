"""The mail outbox: messages to send, written in the transaction of the change
they report (a token issued), sent by mail.sender.MailSender."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import DateTime, Index, Integer, String, Text, Uuid, func, text
from sqlalchemy.orm import Mapped, mapped_column

from fabula_users.database import Base


class OutgoingMail(Base):
    __tablename__ = "mail_outbox"
    __table_args__ = (
        # The sender's work list: only the unsent ones.
        Index(
            "ix_mail_outbox_next_attempt_at",
            "next_attempt_at",
            postgresql_where=text("sent_at IS NULL AND failed_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(255))
    # The text holds a token: it is kept only until the message is sent (or
    # given up on), then cleared.
    body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # When the sender may (re)try it: moved forward when a sender claims it
    # (a lease, so a crashed sender's claim lapses) and after each failure.
    next_attempt_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    failed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
