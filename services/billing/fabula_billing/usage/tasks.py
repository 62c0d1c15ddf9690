"""The safety net: giving back the quota of reservations nobody settled.

Events settle every reservation (generation sends a usage event for every
generation it starts, even after a crash; stories sends delivered or
discarded for every generation it asks for). Events may wait for as long as
NATS is down, so a clock alone must never give quota back: after
BILLING_RESERVATION_TTL_SECONDS this worker asks generation's durable record
(LookupGenerations) about each reservation still waiting for its usage. Only
one no generation was ever started under (e.g. a reservation that committed
after its caller gave up, or made by a caller that never called generation)
is given back, logged as an error; one whose call was started or finished is
kept (its usage event will come) and looked at again a TTL later. Generation
unreachable: nothing is given back, and the next round asks again.

A reservation whose usage is settled holds only its count, which the owner's
GenerationDelivered / GenerationDiscarded releases; expiry never touches it.
A cost-only reservation (story suggestions) expires like any other and gives
back its cost alone: it never held a generation.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from fabula.generation.v1 import generation_pb2, generation_pb2_grpc
from fabula_common.db import Database, utcnow

from fabula_billing.usage.service import BillingService

log = logging.getLogger(__name__)


class GenerationRecords:
    """What generation's durable record says of generations, by id."""

    def __init__(self, generation: generation_pb2_grpc.GenerationServiceStub) -> None:
        self._generation = generation

    async def never_started(self, ids: list[uuid.UUID]) -> set[uuid.UUID]:
        """The ids no generation was ever started under. Raises (grpc's
        AioRpcError) when generation cannot answer: then nothing is known."""
        reply = await self._generation.LookupGenerations(
            generation_pb2.LookupGenerationsRequest(ids=[str(id) for id in ids])
        )
        return {
            uuid.UUID(found.id)
            for found in reply.generations
            if found.state == generation_pb2.GENERATION_STATE_UNKNOWN
        }


class ReservationExpiryWorker:
    """Every `interval_seconds`, expires the reservations past their
    `expires_at` that generation never started a call under."""

    def __init__(
        self,
        db: Database,
        billing: BillingService,
        records: GenerationRecords,
        interval_seconds: float,
        batch_size: int = 500,
    ) -> None:
        self.db = db
        self.billing = billing
        self.records = records
        self.interval_seconds = interval_seconds
        self.batch_size = batch_size
        self._stopped = asyncio.Event()

    async def run(self) -> None:
        while not self._stopped.is_set():
            try:
                expired = await self.expire_due()
                if expired:
                    log.info("expired %d reservations", expired)
            except Exception as exc:  # noqa: BLE001 - database or generation down: next round
                log.warning("reservation expiry failed, will retry: %r", exc)
            try:
                await asyncio.wait_for(self._stopped.wait(), timeout=self.interval_seconds)
            except TimeoutError:
                pass

    async def expire_due(self) -> int:
        """Settle everything due now, one batch at a time: a short transaction
        to find the batch, the question to generation outside any
        transaction, a short one to expire or keep each."""
        total = 0
        while True:
            async with self.db.session_scope() as session:
                due = await self.billing.due_reservations(session, utcnow(), self.batch_size)
            if not due:
                return total
            never_started = await self.records.never_started(due)
            kept = [id for id in due if id not in never_started]
            async with self.db.session_scope() as session:
                now = utcnow()
                # Reservation rows before account rows (the repository's lock order).
                await self.billing.postpone_expiry(session, kept, now)
                total += await self.billing.expire_reservations(
                    session, sorted(never_started), now
                )
            if kept:
                log.info(
                    "kept %d reservations past their expiry: their calls were made, their "
                    "usage is still on its way",
                    len(kept),
                )
            if len(due) < self.batch_size or self._stopped.is_set():
                return total

    async def stop(self) -> None:
        self._stopped.set()
