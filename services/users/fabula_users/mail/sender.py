"""Sends the mail outbox: SMTP (aiosmtplib) when SMTP_HOST is set, otherwise
.eml files in MAIL_DIR for a developer to open.

A sender claims due messages with a lease (next_attempt_at moved past the
send deadline), so replicas never send one message at once and a message a
crashed sender had claimed goes out after the lease. A failed delivery is
retried with exponential backoff; after mail_max_attempts it is given up on.
Once a message is sent or given up on its text, which holds a token, is cleared.
Delivery is at least once: a crash between sending and marking it sent sends
it again (with the same Message-ID, which lets receivers drop the copy).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Protocol

import aiosmtplib
from fabula_common.db import Database, utcnow
from sqlalchemy import select, update

from fabula_users.mail.models import OutgoingMail
from fabula_users.settings import Settings, SmtpTls

log = logging.getLogger(__name__)

BATCH_SIZE = 20


class Transport(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class SmtpTransport:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send(self, message: EmailMessage) -> None:
        s = self.settings
        timeout = s.mail_send_timeout_seconds
        # aiosmtplib's timeout bounds each step; this bounds the whole delivery.
        async with asyncio.timeout(timeout):
            await aiosmtplib.send(
                message,
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username or None,
                password=s.smtp_password.get_secret_value() or None,
                use_tls=s.smtp_tls is SmtpTls.tls,
                start_tls=s.smtp_tls is SmtpTls.starttls,
                timeout=timeout,
            )

    def __str__(self) -> str:
        return f"SMTP {self.settings.smtp_host}:{self.settings.smtp_port}"


class DirectoryTransport:
    """For development: each message becomes an .eml file (any mail program
    opens it), and the log says where."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory).resolve()

    async def send(self, message: EmailMessage) -> None:
        path = await asyncio.to_thread(self._write, message)
        log.info("mail to %s written to %s", message["To"], path)

    def _write(self, message: EmailMessage) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = utcnow().strftime("%Y%m%dT%H%M%S.%f")  # names sort in sending order
        message_id = message["Message-ID"].strip("<>").split("@")[0]
        path = self.directory / f"{stamp}-{message_id}.eml"
        path.write_bytes(_readable(message).as_bytes())
        return path

    def __str__(self) -> str:
        return f"files in {self.directory}"


def _readable(message: EmailMessage) -> EmailMessage:
    """The message with its text unencoded (8bit, not quoted-printable): a
    developer reads the file in an editor and copies a link from it whole,
    not broken across lines with `=3D` for each `=`. Only for files: an SMTP
    server need not accept 8bit."""
    readable = EmailMessage()
    for name, value in message.items():
        if name.lower() not in ("content-type", "content-transfer-encoding", "mime-version"):
            readable[name] = value
    readable.set_content(message.get_content(), cte="8bit")
    return readable


def transport_for(settings: Settings) -> Transport:
    if settings.smtp_host:
        return SmtpTransport(settings)
    return DirectoryTransport(settings.mail_dir)


def compose(mail: OutgoingMail, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.recipient
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(mail.created_at)
    # Stable across retries, so a receiver can drop a copy sent twice.
    message["Message-ID"] = f"<{mail.id}@fabula>"
    message.set_content(mail.body or "")
    return message


class MailSender:
    def __init__(self, db: Database, settings: Settings, transport: Transport | None = None):
        self.db = db
        self.settings = settings
        self.transport = transport or transport_for(settings)
        self._stopped = asyncio.Event()
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        """A message was committed: send it now rather than at the next poll."""
        self._wakeup.set()

    def _retry_delay(self, attempts: int) -> float:
        s = self.settings
        return min(s.mail_retry_base_seconds * 2 ** max(attempts - 1, 0), s.mail_retry_max_seconds)

    async def _claim(self) -> list[OutgoingMail]:
        now = utcnow()
        # Longer than one delivery may take: the claim lapses only when its
        # sender is gone.
        lease = dt.timedelta(seconds=2 * self.settings.mail_send_timeout_seconds + 5)
        due = (
            select(OutgoingMail.id)
            .where(
                OutgoingMail.sent_at.is_(None),
                OutgoingMail.failed_at.is_(None),
                OutgoingMail.next_attempt_at <= now,
            )
            .order_by(OutgoingMail.next_attempt_at)
            .limit(BATCH_SIZE)
            .with_for_update(skip_locked=True)
        )
        async with self.db.session_scope() as session:
            claimed = await session.scalars(
                update(OutgoingMail)
                .where(OutgoingMail.id.in_(due.scalar_subquery()))
                .values(next_attempt_at=now + lease, attempts=OutgoingMail.attempts + 1)
                .returning(OutgoingMail)
                .execution_options(synchronize_session=False)
            )
            return list(claimed)

    async def send_due(self) -> int:
        """Send what is due now; return how many went out."""
        sent = 0
        for mail in await self._claim():
            try:
                await self.transport.send(compose(mail, self.settings.mail_from))
            except Exception as exc:  # noqa: BLE001 - any failure of delivery is retried
                await self._failed(mail, exc)
                continue
            async with self.db.session_scope() as session:
                await session.execute(
                    update(OutgoingMail)
                    .where(OutgoingMail.id == mail.id)
                    .values(sent_at=utcnow(), body=None, last_error=None)
                )
            sent += 1
        return sent

    async def _failed(self, mail: OutgoingMail, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"[:1000]
        now = utcnow()
        if mail.attempts >= self.settings.mail_max_attempts:
            values = {"failed_at": now, "body": None, "last_error": error}
            log.error(
                "mail %s to %s given up after %d attempts: %s",
                mail.id,
                mail.recipient,
                mail.attempts,
                error,
            )
        else:
            delay = self._retry_delay(mail.attempts)
            values = {"next_attempt_at": now + dt.timedelta(seconds=delay), "last_error": error}
            log.warning(
                "mail %s to %s failed (attempt %d), retrying in %gs: %s",
                mail.id,
                mail.recipient,
                mail.attempts,
                delay,
                error,
            )
        async with self.db.session_scope() as session:
            await session.execute(
                update(OutgoingMail).where(OutgoingMail.id == mail.id).values(**values)
            )

    async def run(self) -> None:
        log.info("sending mail via %s", self.transport)
        while not self._stopped.is_set():
            self._wakeup.clear()
            if self._stopped.is_set():
                break
            try:
                while await self.send_due() == BATCH_SIZE:
                    pass
            except Exception as exc:  # noqa: BLE001 - database briefly away: next round
                log.warning("sending mail failed, will retry: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=self.settings.mail_poll_seconds)

    async def stop(self) -> None:
        self._stopped.set()
        self._wakeup.set()
