"""Dead letters: messages a consumer gave up on, kept in the stream on
`<NATS_SUBJECT_PREFIX>.dead_letter.<consumer>` with the original subject,
consumer, delivery count and error in headers, until an operator replays them
(`python -m fabula_common.messaging.replay`) or the stream's max age drops them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from fabula_common.messaging.bus import EventBus, dead_letter_subject
from fabula_common.messaging.headers import (
    DEAD_LETTER_CONSUMER_HEADER,
    DEAD_LETTER_DELIVERIES_HEADER,
    DEAD_LETTER_ERROR_HEADER,
    DEAD_LETTER_HEADERS,
    DEAD_LETTER_MSG_ID_HEADER,
    DEAD_LETTER_SUBJECT_HEADER,
    MSG_ID_HEADER,
)

# A header value is one line; an error's text is cut to this length.
MAX_ERROR_LENGTH = 500


def _one_line(text: str) -> str:
    return " ".join(text.split())[:MAX_ERROR_LENGTH]


async def send_to_dead_letters(
    js: JetStreamContext,
    bus: EventBus,
    *,
    consumer: str,
    subject: str,
    data: bytes,
    headers: dict[str, str] | None,
    deliveries: int,
    error: str,
    stream_sequence: int,
) -> None:
    """Publish a copy of a message to `consumer`'s dead-letter subject. Its
    id is derived from the original's stream sequence: should the original be
    dead-lettered twice (its ack lost), JetStream keeps one copy."""
    original = {k: v for k, v in (headers or {}).items() if not k.startswith("Nats-")}
    original_msg_id = (headers or {}).get(MSG_ID_HEADER)
    dead = {
        **original,
        MSG_ID_HEADER: f"dead-letter.{consumer}.{stream_sequence}",
        DEAD_LETTER_SUBJECT_HEADER: subject,
        DEAD_LETTER_CONSUMER_HEADER: consumer,
        DEAD_LETTER_DELIVERIES_HEADER: str(deliveries),
        DEAD_LETTER_ERROR_HEADER: _one_line(error) or "unknown error",
    }
    if original_msg_id:
        dead[DEAD_LETTER_MSG_ID_HEADER] = original_msg_id
    await js.publish(
        dead_letter_subject(bus.settings, consumer),
        data,
        headers=dead,
        timeout=bus.settings.nats_timeout_seconds,
    )


@dataclass(frozen=True)
class DeadLetter:
    sequence: int  # in the stream
    subject: str  # where it was originally published
    consumer: str
    deliveries: int
    error: str
    stored_at: dt.datetime | None
    data: bytes
    headers: dict[str, str]

    def original_headers(self) -> dict[str, str]:
        """The headers to re-publish with. The message id is new (the old one
        is inside JetStream's duplicate window, or may be) and stable for this
        dead letter, so a replay that is itself repeated is dropped as a
        duplicate; the consumer's inbox keys on the event id in the payload."""
        headers = {
            k: v
            for k, v in self.headers.items()
            if k not in DEAD_LETTER_HEADERS and not k.startswith("Nats-")
        }
        original_id = self.headers.get(DEAD_LETTER_MSG_ID_HEADER, "")
        headers[MSG_ID_HEADER] = f"{original_id or 'event'}.replay.{self.sequence}"
        return headers


async def dead_letters(bus: EventBus, consumer: str) -> AsyncIterator[DeadLetter]:
    """The dead letters of `consumer`, oldest first, read without consuming them."""
    js = await bus.jetstream()
    stream = bus.settings.nats_stream
    subject = dead_letter_subject(bus.settings, consumer)
    sequence = 1
    while True:
        try:
            raw = await js.get_msg(stream, seq=sequence, subject=subject, next=True)
        except NotFoundError:
            return
        headers = dict(raw.headers or {})
        yield DeadLetter(
            sequence=raw.seq,
            subject=headers.get(DEAD_LETTER_SUBJECT_HEADER, ""),
            consumer=headers.get(DEAD_LETTER_CONSUMER_HEADER, consumer),
            deliveries=int(headers.get(DEAD_LETTER_DELIVERIES_HEADER, "0") or 0),
            error=headers.get(DEAD_LETTER_ERROR_HEADER, ""),
            stored_at=raw.time,
            data=raw.data or b"",
            headers=headers,
        )
        sequence = raw.seq + 1


async def replay(bus: EventBus, letter: DeadLetter) -> None:
    """Re-publish `letter` to its original subject, then remove it."""
    if not letter.subject:
        raise ValueError(f"dead letter {letter.sequence} names no original subject")
    js = await bus.jetstream()
    await js.publish(
        letter.subject,
        letter.data,
        headers=letter.original_headers(),
        timeout=bus.settings.nats_timeout_seconds,
    )
    await js.delete_msg(bus.settings.nats_stream, letter.sequence)
