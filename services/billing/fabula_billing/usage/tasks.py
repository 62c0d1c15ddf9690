"""The safety net: giving back the quota of reservations nobody settled.

Events settle every reservation (generation sends a usage event for every
generation it starts, even after a crash, from its sweeper; stories sends
delivered or discarded for every generation it asks for). Only a producer
that lost its records leaves one held; after BILLING_RESERVATION_TTL_SECONDS
(a day by default, far longer than any outage the events wait out) this
worker gives it back, logged as an error.
"""

from __future__ import annotations

import asyncio
import logging

from fabula_common.db import Database, utcnow

from fabula_billing.usage.service import BillingService

log = logging.getLogger(__name__)


class ReservationExpiryWorker:
    """Every `interval_seconds`, expires the reservations past their `expires_at`."""

    def __init__(
        self,
        db: Database,
        billing: BillingService,
        interval_seconds: float,
        batch_size: int = 500,
    ) -> None:
        self.db = db
        self.billing = billing
        self.interval_seconds = interval_seconds
        self.batch_size = batch_size
        self._stopped = asyncio.Event()

    async def run(self) -> None:
        while not self._stopped.is_set():
            try:
                expired = await self.expire_due()
                if expired:
                    log.info("expired %d reservations", expired)
            except Exception as exc:  # noqa: BLE001 - database down: try again next round
                log.warning("reservation expiry failed: %s", exc or type(exc).__name__)
            try:
                await asyncio.wait_for(self._stopped.wait(), timeout=self.interval_seconds)
            except TimeoutError:
                pass

    async def expire_due(self) -> int:
        """Expire everything due now, one short transaction per batch."""
        total = 0
        while True:
            async with self.db.session_scope() as session:
                expired = await self.billing.expire_reservations(session, utcnow(), self.batch_size)
            total += expired
            if expired < self.batch_size or self._stopped.is_set():
                return total

    async def stop(self) -> None:
        self._stopped.set()
