"""Per-request context carried across await points: request id, deadline,
and whether the request is made for a child-safe account."""

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

# True when the request acts for an account that must get child-safe
# generation (its holder is under 13): the gateway sets it from the principal,
# every outbound call carries it (CHILD_SAFE_HEADER) and every server reads it
# back, so each hop down to generation's model calls sees it.
child_safe_var: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "fabula_child_safe", default=False
)
CHILD_SAFE_HEADER = "x-fabula-child-safe"


def is_child_safe() -> bool:
    return child_safe_var.get()


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
