"""Background work of the idempotency domain."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fabula_common.db import Database
from fabula_common.db_errors import log_background_failure

from fabula_stories.idempotency import service

log = logging.getLogger(__name__)


class ExpiredKeysPurger:
    """Deletes the Idempotency-Keys older than their 24 hours, a batch per
    transaction, so the table holds one day of keys. Safe to run in every
    replica (rows are taken with SKIP LOCKED)."""

    batch_size = 1000

    def __init__(self, db: Database, interval_seconds: float) -> None:
        self.db = db
        self.interval_seconds = interval_seconds
        self._stopped = asyncio.Event()

    async def purge_once(self) -> int:
        purged = 0
        while True:
            async with self.db.session_scope() as session:
                deleted = await service.purge_expired(session, self.batch_size)
            purged += deleted
            if deleted < self.batch_size:
                break
        if purged:
            log.info("purged %d expired idempotency keys", purged)
        return purged

    async def run(self) -> None:
        while not self._stopped.is_set():
            try:
                await self.purge_once()
            except Exception as exc:  # noqa: BLE001 - database briefly away: next round
                log_background_failure(log, "purging expired idempotency keys", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), timeout=self.interval_seconds)

    async def stop(self) -> None:
        self._stopped.set()
