"""Background work of the users service besides the outbox relay."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fabula_common.db import Database
from fabula_common.db_errors import log_background_failure

from fabula_users.accounts.service import UsersService
from fabula_users.accounts.throttle import LoginThrottle

log = logging.getLogger(__name__)


class ExpiredRecordsPurger:
    """Deletes refresh tokens long expired and registration keys expired, so
    the tables do not grow with every login forever, and forgets sealed
    replacements whose grace window has ended. Safe to run in every replica
    (plain DELETEs and UPDATEs)."""

    def __init__(self, db: Database, service: UsersService, interval_seconds: float) -> None:
        self.db = db
        self.service = service
        self.throttle = LoginThrottle(service.settings)
        self.interval_seconds = interval_seconds
        self._stopped = asyncio.Event()

    async def purge_once(self) -> int:
        async with self.db.session_scope() as session:
            deleted = await self.service.purge_expired_refresh_tokens(session)
            keys = await self.service.purge_expired_registration_keys(session)
            tokens = await self.service.purge_expired_account_tokens(session)
            failures = await self.throttle.purge(session)
        if deleted or keys or tokens or failures:
            log.info(
                "purged %d expired refresh tokens, %d registration keys, %d emailed tokens, "
                "%d login failure counts",
                deleted,
                keys,
                tokens,
                failures,
            )
        return deleted

    async def run(self) -> None:
        while not self._stopped.is_set():
            try:
                await self.purge_once()
            except Exception as exc:  # noqa: BLE001 - database briefly away: next round
                log_background_failure(log, "purging expired records", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), timeout=self.interval_seconds)

    async def stop(self) -> None:
        self._stopped.set()
