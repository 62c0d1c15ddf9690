"""The mailer on its own (no service running beside it, whose sender would
race these): retries with backoff, giving up, and one delivery per message
through a real local SMTP server."""

from __future__ import annotations

import asyncio
import email
import email.policy
import uuid
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from fabula_common.db import Database, utcnow
from fabula_common.testing import free_port
from fabula_users.mail.models import OutgoingMail
from fabula_users.mail.outbox import enqueue_mail
from fabula_users.mail.sender import DirectoryTransport, MailSender, compose
from fabula_users.mail.templates import render
from fabula_users.settings import Settings
from sqlalchemy import select, update

from .test_accounts import Inbox, new_email


@pytest.fixture(scope="module")
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


@pytest.fixture(scope="module")
def inbox(smtp) -> Inbox:
    return smtp[1]


@pytest.fixture(scope="module")
def settings(test_database, smtp):
    return Settings(smtp_host="127.0.0.1", smtp_port=smtp[0].port, smtp_tls="none")


@pytest.fixture(scope="module")
async def db(test_database):
    database = Database(Settings())
    yield database
    await database.dispose()


class FailingTransport:
    def __init__(self) -> None:
        self.calls = 0

    async def send(self, message: EmailMessage) -> None:
        self.calls += 1
        raise ConnectionRefusedError("no SMTP server")


async def test_a_failing_delivery_is_retried_with_backoff_then_given_up(db, settings):
    recipient = new_email()
    async with db.session_scope() as session:
        await enqueue_mail(session, recipient=recipient, subject="s", body="token=secret")
    transport = FailingTransport()
    sender = MailSender(
        db, settings.model_copy(update={"mail_max_attempts": 2}), transport=transport
    )

    async def stored() -> OutgoingMail:
        async with db.session_scope() as session:
            return await session.scalar(
                select(OutgoingMail).where(OutgoingMail.recipient == recipient)
            )

    await sender.send_due()
    first = await stored()
    assert (first.attempts, first.sent_at, first.failed_at) == (1, None, None)
    assert "no SMTP server" in first.last_error and first.body == "token=secret"
    delay = (first.next_attempt_at - utcnow()).total_seconds()
    assert settings.mail_retry_base_seconds - 2 < delay <= settings.mail_retry_base_seconds

    await sender.send_due()  # not due yet: not tried
    assert transport.calls == 1
    async with db.session_scope() as session:
        await session.execute(
            update(OutgoingMail)
            .where(OutgoingMail.recipient == recipient)
            .values(next_attempt_at=utcnow())
        )
    await sender.send_due()
    given_up = await stored()
    assert transport.calls == 2
    assert given_up.failed_at is not None and given_up.body is None


async def test_a_message_goes_out_once_through_smtp_with_a_deadline(db, settings, inbox):
    recipient = new_email()
    async with db.session_scope() as session:
        await enqueue_mail(session, recipient=recipient, subject="Hello", body="Hi there")
    sender = MailSender(db, settings)
    # Another sender's pass at the same time claims nothing twice.
    await asyncio.gather(sender.send_due(), MailSender(db, settings).send_due())
    message = await inbox.wait_for(recipient)
    assert (message["Subject"], message["From"]) == ("Hello", settings.mail_from)
    await asyncio.sleep(0.3)
    assert len(inbox.to(recipient)) == 1


@pytest.mark.parametrize(
    ("kind", "locale", "ttl_seconds", "says"),
    [
        ("reset-password", "en", 3600, "for 1 hour."),
        ("reset-password", "de", 3600, "einmal und 1 Stunde lang."),
        ("verify-email", "en", 48 * 3600, "for 48 hours."),
        ("verify-email", "de", 48 * 3600, "einmal und 48 Stunden lang."),
        ("reset-password", "en", 30 * 60, "for 30 minutes."),
        ("reset-password", "de", 60, "einmal und 1 Minute lang."),
        ("reset-password", "fr", 2 * 3600, "for 2 hours."),  # an unknown locale: English
    ],
)
def test_an_email_says_how_long_its_link_works_in_the_readers_grammar(
    kind, locale, ttl_seconds, says
):
    _, body = render(
        kind, locale, base_url="https://app.example", token="t0k", ttl_seconds=ttl_seconds
    )
    assert says in body, body
    assert "?token=t0k" in body


async def test_a_mail_written_to_the_folder_shows_its_link_as_sent(tmp_path):
    """`make run` without SMTP: the developer opens the file in an editor and
    copies the link, so it must stand there whole, on one line."""
    token = "JkiBnLtRv3Py1zGjKxSSCCTgV3Lrrral1r07BlTyQkQ-_x"
    subject, body = render(
        "reset-password", "de", base_url="http://127.0.0.1:8000", token=token, ttl_seconds=3600
    )
    mail = OutgoingMail(
        id=uuid.uuid4(),
        recipient="ada@example.com",
        subject=subject,
        body=body,
        created_at=utcnow(),
    )
    await DirectoryTransport(str(tmp_path)).send(compose(mail, "Fabula <no-reply@fabula.local>"))
    [path] = tmp_path.glob("*.eml")
    raw = path.read_bytes()
    assert f"http://127.0.0.1:8000/reset-password?token={token}\n".encode() in raw
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert (parsed["To"], parsed["Subject"]) == ("ada@example.com", "Passwort zurücksetzen")
    assert parsed.get_content() == body  # a mail program reads the same text
