"""Queueing an email: a row of the mail outbox, in the caller's transaction."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from fabula_users.mail.models import OutgoingMail


async def enqueue_mail(session: AsyncSession, *, recipient: str, subject: str, body: str) -> None:
    """Sent by MailSender once the transaction commits; never if it rolls back."""
    session.add(OutgoingMail(id=uuid.uuid4(), recipient=recipient, subject=subject, body=body))
    await session.flush()
