"""Background work of the stories service besides the outbox relay."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fabula_common.db import Database

from fabula_stories.stories import service
from fabula_stories.stories.events import DeliverySubjects

log = logging.getLogger(__name__)


class ClaimSweeper:
    """Discards the generations whose writer stopped renewing its claim (the
    process died, or it could not reach the database for a whole lease): frees
    their stories and publishes GenerationDiscarded, so billing gives their
    quota back. Safe to run in every replica: claims are taken with SKIP
    LOCKED, and a claim being stored right now is skipped (storing wins)."""

    batch_size = 100

    def __init__(self, db: Database, subjects: DeliverySubjects, interval_seconds: float) -> None:
        self.db = db
        self.subjects = subjects
        self.interval_seconds = interval_seconds
        self._stopped = asyncio.Event()

    async def sweep_once(self) -> int:
        """Discard every expired claim, a batch per transaction; how many."""
        swept = 0
        while True:
            async with self.db.session_scope() as session:
                discarded = await service.discard_expired(session, self.subjects, self.batch_size)
            swept += discarded
            if discarded < self.batch_size:
                break
        if swept:
            log.warning("discarded %d generations whose writer stopped (claim expired)", swept)
        return swept

    async def run(self) -> None:
        while not self._stopped.is_set():
            try:
                await self.sweep_once()
            except Exception as exc:  # noqa: BLE001 - database briefly away: next round
                log.warning("sweeping expired write claims failed, will retry: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), timeout=self.interval_seconds)

    async def stop(self) -> None:
        self._stopped.set()
