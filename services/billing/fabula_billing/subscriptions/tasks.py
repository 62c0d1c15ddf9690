"""The webhook inbox's worker: handles stored Stripe events, oldest first.

An event is handled in one transaction with the mark that it was handled,
so its effects happen exactly once. A failure (Stripe unreachable, say)
rolls the effects back and schedules the event again after base * 2^(n-1)
seconds (at most max); after STRIPE_EVENT_MAX_ATTEMPTS attempts it is parked
for an operator (`python -m fabula_billing.subscriptions.inbox`). Several
billing processes share the inbox: a locked event is skipped by the others.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from fabula_common.context import request_id_scope
from fabula_common.db import Database, utcnow

from fabula_billing.settings import Settings
from fabula_billing.subscriptions import repository as repo
from fabula_billing.subscriptions.service import SubscriptionService

log = logging.getLogger(__name__)


class StripeInboxWorker:
    def __init__(self, db: Database, service: SubscriptionService, settings: Settings) -> None:
        self.db = db
        self.service = service
        self.max_attempts = settings.stripe_event_max_attempts
        self.retry_base = settings.stripe_event_retry_base_seconds
        self.retry_max = settings.stripe_event_retry_max_seconds
        self.poll_seconds = settings.stripe_event_poll_seconds
        self._stopped = asyncio.Event()
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        """An event was stored: handle it now rather than at the next poll."""
        self._wakeup.set()

    def retry_delay(self, attempts: int) -> float:
        return min(self.retry_max, self.retry_base * 2 ** max(0, attempts - 1))

    async def run(self) -> None:
        while not self._stopped.is_set():
            # Cleared before the pass: a wake-up during it causes another pass.
            self._wakeup.clear()
            wait = self.poll_seconds
            try:
                await self.handle_due()
                async with self.db.session_scope() as session:
                    due = await repo.next_due_at(session)
                if due is not None:
                    wait = min(wait, max(0.0, (due - utcnow()).total_seconds()))
            except Exception as exc:  # noqa: BLE001 - database down: next round
                log.warning("Stripe inbox pass failed, will retry: %r", exc)
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=wait)
            except TimeoutError:
                pass

    async def handle_due(self) -> int:
        """Handle every event due now; how many were handled."""
        handled = 0
        while not self._stopped.is_set():
            async with self.db.session_scope() as session:
                now = utcnow()
                event = await repo.claim_due_event(session, now)
                if event is None:
                    return handled
                with request_id_scope(f"stripe-{event.id}"):
                    try:
                        async with session.begin_nested():
                            await self.service.handle_event(session, event.payload)
                    except Exception as exc:  # noqa: BLE001 - any failure: retried later
                        await self._failed(session, event.id, event.attempts + 1, exc, now)
                    else:
                        await repo.mark_event_handled(session, event.id, now)
                        handled += 1
                        log.info("Stripe event %s (%s) handled", event.id, event.type)
        return handled

    async def _failed(
        self, session, event_id: str, attempts: int, exc: Exception, now: dt.datetime
    ) -> None:
        error = f"{type(exc).__name__}: {exc}"
        parked = now if attempts >= self.max_attempts else None
        delay = self.retry_delay(attempts)
        await repo.record_event_failure(
            session, event_id, error, now + dt.timedelta(seconds=delay), parked
        )
        if parked:
            log.error("Stripe event %s parked after %d attempts: %s", event_id, attempts, error)
        else:
            log.warning(
                "Stripe event %s failed (attempt %d), retried in %.0f s: %s",
                event_id, attempts, delay, error,
            )

    async def stop(self) -> None:
        self._stopped.set()
        self._wakeup.set()
