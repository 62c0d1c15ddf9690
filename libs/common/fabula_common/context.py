"""Per-request context carried across await points: request id and deadline."""

from __future__ import annotations

import contextvars
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "fabula_request_id", default=None
)
# Monotonic time by which the current incoming call must be answered.
deadline_var: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "fabula_deadline", default=None
)


def new_request_id() -> str:
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    return request_id_var.get()


@contextmanager
def request_id_scope(request_id: str | None) -> Iterator[str]:
    """Run the block under `request_id` (a fresh one when None) and restore
    the previous id afterwards, so nothing logged later carries this one."""
    request_id = request_id or new_request_id()
    token = request_id_var.set(request_id)
    try:
        yield request_id
    finally:
        request_id_var.reset(token)


def set_deadline_in(seconds: float | None) -> None:
    deadline_var.set(None if seconds is None else time.monotonic() + seconds)


def remaining_time(default: float) -> float:
    """The deadline for an outbound call: `default`, or less when the incoming
    call that caused it must be answered sooner."""
    deadline = deadline_var.get()
    if deadline is None:
        return default
    return max(0.0, min(default, deadline - time.monotonic()))
