"""Background worker settling generations whose process died mid-call.

A generation is recorded as started before its quota is reserved; the call
that started it records its outcome and usage event. When the process dies
first, the row stays started: once no call can still be running (the longest
a call may last, plus a margin), this worker settles it as failed and sends
its usage event, which releases the reservation with billing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from fabula_common.db import Database, utcnow

from fabula_generation.generations.service import abandon_stale_generations
from fabula_generation.metrics import GENERATIONS_ABANDONED

log = logging.getLogger(__name__)


class AbandonedGenerationSweeper:
    """Every `interval_seconds`, settles generations started more than
    `abandon_after_seconds` ago and never finished."""

    def __init__(
        self,
        db: Database,
        subject: str,
        *,
        interval_seconds: float,
        abandon_after_seconds: float,
        batch_size: int = 200,
    ) -> None:
        self.db = db
        self.subject = subject
        self.interval_seconds = interval_seconds
        self.abandon_after = dt.timedelta(seconds=abandon_after_seconds)
        self.batch_size = batch_size
        self._stopped = asyncio.Event()

    async def run(self) -> None:
        while not self._stopped.is_set():
            try:
                await self.sweep()
            except Exception as exc:  # noqa: BLE001 - database down: try again next round
                log.warning("sweeping abandoned generations failed: %s", exc or type(exc).__name__)
            try:
                await asyncio.wait_for(self._stopped.wait(), timeout=self.interval_seconds)
            except TimeoutError:
                pass

    async def sweep(self) -> int:
        """Settle everything abandoned by now, one short transaction per batch."""
        total = 0
        while True:
            async with self.db.session_scope() as session:
                abandoned = await abandon_stale_generations(
                    session, utcnow() - self.abandon_after, self.batch_size, self.subject
                )
            for row in abandoned:
                GENERATIONS_ABANDONED.labels(row.provider, row.model).inc()
                log.error(
                    "generation %s of user %s was abandoned mid-call (started %s): settled as "
                    "failed with its estimated prompt usage",
                    row.id,
                    row.user_id,
                    row.created_at.isoformat(),
                )
            total += len(abandoned)
            if len(abandoned) < self.batch_size or self._stopped.is_set():
                return total

    async def stop(self) -> None:
        self._stopped.set()
