"""Background worker settling generations whose process died mid-call.

A generation is recorded as started (with the name of the process instance
serving it) before its quota is reserved; the call that started it records
its outcome and usage event. When the process dies first, the row stays
started. A process starting again under the same instance name settles at
once what its previous run left started (a fresh process has nothing in
flight); rows of an instance that never comes back are settled once no call
can still be running (the longest a call may last, plus a margin). Either way
the row becomes failed with its usage event, which releases the reservation
with billing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from fabula_common.db import Database, utcnow
from fabula_common.db_errors import log_background_failure

from fabula_generation.generations.service import abandon_stale_generations
from fabula_generation.metrics import GENERATIONS_ABANDONED

log = logging.getLogger(__name__)


# How soon settling the previous run's generations is tried again when the
# database was down at start.
PREVIOUS_RUN_RETRY_SECONDS = 1.0


class AbandonedGenerationSweeper:
    """First settles what this process instance's previous run left started
    (everything of `instance` started before this sweeper was made, which is
    before the process serves), then every `interval_seconds` settles
    generations started more than `abandon_after_seconds` ago and never
    finished."""

    def __init__(
        self,
        db: Database,
        subject: str,
        *,
        interval_seconds: float,
        abandon_after_seconds: float,
        instance: str | None = None,
        batch_size: int = 200,
    ) -> None:
        self.db = db
        self.subject = subject
        self.interval_seconds = interval_seconds
        self.abandon_after = dt.timedelta(seconds=abandon_after_seconds)
        self.instance = instance
        # Every generation of this instance started before now was started by
        # a previous run of it; the ones started from now on are this run's.
        self.started_at = utcnow()
        self.previous_run_settled = instance is None
        self.batch_size = batch_size
        self._stopped = asyncio.Event()

    async def run(self) -> None:
        while not self._stopped.is_set():
            try:
                if not self.previous_run_settled:
                    await self.settle_previous_run()
                await self.sweep()
            except Exception as exc:  # noqa: BLE001 - database down: try again next round
                log_background_failure(log, "sweeping abandoned generations", exc)
            interval = self.interval_seconds
            if not self.previous_run_settled:
                interval = min(interval, PREVIOUS_RUN_RETRY_SECONDS)
            try:
                await asyncio.wait_for(self._stopped.wait(), timeout=interval)
            except TimeoutError:
                pass

    async def settle_previous_run(self) -> int:
        """Settle everything this instance's previous run left started."""
        assert self.instance is not None
        settled = await self._settle(self.started_at, self.instance)
        self.previous_run_settled = True
        if settled:
            log.warning(
                "settled %d generations left started by the previous run of instance %s",
                settled,
                self.instance,
            )
        return settled

    async def sweep(self) -> int:
        """Settle everything abandoned by now, one short transaction per batch."""
        return await self._settle(utcnow() - self.abandon_after, None)

    async def _settle(self, cutoff: dt.datetime, owner: str | None) -> int:
        total = 0
        while True:
            async with self.db.session_scope() as session:
                abandoned = await abandon_stale_generations(
                    session, cutoff, self.batch_size, self.subject, owner=owner
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
