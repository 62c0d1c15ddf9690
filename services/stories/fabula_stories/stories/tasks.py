"""Background work of the stories service besides the outbox relay."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from fabula_common.db import Database, utcnow
from fabula_common.db_errors import log_background_failure

from sqlalchemy.ext.asyncio import AsyncSession

from fabula_stories.stories import service
from fabula_stories.stories.events import DeliverySubjects

log = logging.getLogger(__name__)


class ClaimSweeper:
    """Discards the generations whose writer stopped renewing its claim (the
    process died, or it could not reach the database for a whole lease): frees
    their stories and publishes GenerationDiscarded, so billing gives their
    quota back. Safe to run in every replica: claims are taken with SKIP
    LOCKED, and a claim being stored right now is skipped (storing wins).

    It also recovers what this process's previous incarnation left (`owner`
    is the name both run under): their claims are discarded at startup,
    before the port opens, without waiting for their leases to run out."""

    batch_size = 100
    # The startup attempt at recovery holds back serving at most this long;
    # if the database is away, the sweeper's rounds try again.
    startup_timeout_seconds = 5.0

    def __init__(
        self, db: Database, subjects: DeliverySubjects, interval_seconds: float, *, owner: str
    ) -> None:
        self.db = db
        self.subjects = subjects
        self.interval_seconds = interval_seconds
        self.owner = owner
        # Claims of `owner` made before this instant are a previous
        # incarnation's; this process's own are made later (in this process,
        # on the same clock).
        self._started_at = utcnow()
        self._recovered = False
        self._stopped = asyncio.Event()

    async def sweep_once(self) -> int:
        """Discard every expired claim, a batch per transaction; how many."""
        swept = await self._in_batches(
            lambda session: service.discard_expired(session, self.subjects, self.batch_size)
        )
        if swept:
            log.warning("discarded %d generations whose writer stopped (claim expired)", swept)
        return swept

    async def recover_once(self) -> int:
        """Discard every claim this process's previous incarnation left, a
        batch per transaction; how many."""
        recovered = await self._in_batches(
            lambda session: service.discard_owned(
                session, self.subjects, self.owner, self._started_at, self.batch_size
            )
        )
        self._recovered = True
        if recovered:
            log.warning(
                "discarded %d generations of this process's previous incarnation (%s)",
                recovered,
                self.owner,
            )
        return recovered

    async def recover_on_startup(self) -> None:
        """One bounded attempt before serving; never fails the start."""
        try:
            async with asyncio.timeout(self.startup_timeout_seconds):
                await self.recover_once()
        except Exception as exc:  # noqa: BLE001 - database away: retried by run()
            log.warning("could not discard the claims left by a previous run, will retry: %r", exc)

    async def run(self) -> None:
        while not self._stopped.is_set():
            try:
                if not self._recovered:
                    await self.recover_once()
                await self.sweep_once()
            except Exception as exc:  # noqa: BLE001 - database briefly away: next round
                log_background_failure(log, "sweeping write claims", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), timeout=self.interval_seconds)

    async def stop(self) -> None:
        self._stopped.set()

    async def _in_batches(self, discard_batch: Callable[[AsyncSession], Awaitable[int]]) -> int:
        discarded_in_all = 0
        while True:
            async with self.db.session_scope() as session:
                discarded = await discard_batch(session)
            discarded_in_all += discarded
            if discarded < self.batch_size:
                return discarded_in_all
