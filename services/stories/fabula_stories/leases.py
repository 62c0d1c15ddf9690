"""What the story and conversation writers share: their work runs in tasks
of its own (a caller that goes away cancels nothing; shutdown gives it a
grace, then cancels it), under a write lease renewed while it runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from fabula_common.db import Database
from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger(__name__)

T = TypeVar("T")

# A renewal that failed (the database is away) is retried this soon.
RENEW_RETRY_SECONDS = 0.5


async def keep_renewed(
    db: Database,
    renew: Callable[[AsyncSession], Awaitable[bool]],
    stopped: asyncio.Event,
    *,
    interval: float,
    what: str,
) -> bool:
    """Renew a lease with `renew` (True while still held) every `interval`
    until `stopped` is set. A failed renewal is retried every
    RENEW_RETRY_SECONDS, so the lease survives any outage shorter than what
    it still has left. False when the lease was found taken or ended."""
    wait = interval
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopped.wait(), timeout=wait)
        if stopped.is_set():
            return True
        try:
            async with db.session_scope() as session:
                held = await renew(session)
        except Exception as exc:  # noqa: BLE001 - database briefly away: retried soon
            log.warning("could not renew the claim of %s: %r", what, exc)
            wait = min(RENEW_RETRY_SECONDS, interval)
            continue
        wait = interval
        if not held:
            return False


class WriterTasks:
    """The tasks a writer runs its work in, kept until they end."""

    def __init__(self) -> None:
        # Strong references: the event loop keeps only weak ones to tasks.
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        # The task inherits this call's context: request id and deadline.
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def finish(self, grace_seconds: float) -> None:
        """Give the tasks `grace_seconds` to end, then cancel the others and
        wait for them (their own cleanup included)."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace_seconds)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def wait(self, timeout: float) -> None:
        """Wait up to `timeout` for the tasks still running (e.g. the ones
        cancelled work started to record its end)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
