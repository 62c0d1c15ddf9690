"""The one spelling of every header Fabula reads or writes: HTTP requests,
gRPC metadata and NATS messages alike. Imports nothing of ours, so any
module (context, tracing, the gateway) can use it without an import cycle.

gRPC metadata keys must be lowercase, and HTTP headers are case-insensitive,
so our own names are lowercase everywhere. NATS headers are case-sensitive:
a message carries exactly these spellings.
"""

from __future__ import annotations

# The id of the request that caused a call or an event; every log line carries it.
REQUEST_ID_HEADER = "x-request-id"

# JetStream's own header, spelled its way: the server drops a message whose
# id it saw inside the stream's duplicate window. Holds the event id.
MSG_ID_HEADER = "Nats-Msg-Id"

# The full protobuf name of the event (e.g. fabula.users.v1.UserRegistered).
EVENT_TYPE_HEADER = "fabula-event-type"

# Set on a dead letter: where the message was published, which consumer gave
# up on it, after how many deliveries, with what error, and its original
# message id (the dead letter itself needs an id of its own).
DEAD_LETTER_SUBJECT_HEADER = "fabula-dead-letter-subject"
DEAD_LETTER_CONSUMER_HEADER = "fabula-dead-letter-consumer"
DEAD_LETTER_DELIVERIES_HEADER = "fabula-dead-letter-deliveries"
DEAD_LETTER_ERROR_HEADER = "fabula-dead-letter-error"
DEAD_LETTER_MSG_ID_HEADER = "fabula-dead-letter-msg-id"

DEAD_LETTER_HEADERS = (
    DEAD_LETTER_SUBJECT_HEADER,
    DEAD_LETTER_CONSUMER_HEADER,
    DEAD_LETTER_DELIVERIES_HEADER,
    DEAD_LETTER_ERROR_HEADER,
    DEAD_LETTER_MSG_ID_HEADER,
)
