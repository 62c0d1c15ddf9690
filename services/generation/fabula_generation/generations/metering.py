"""Quota for model calls: a reservation with billing before each call.

The reservation's id is the generation's, and the generation is recorded as
started while it is made, so whatever happens after the row is written the
generation ends with one UsageRecorded event (from the call, or from the
sweeper after a crash), and that event is what settles or releases the
reservation with billing. The explicit release here is only a fast path for a
call whose row could not be written (a reservation nobody released is given
back by billing's expiry: generation's record knows no call under it).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from decimal import Decimal

import grpc
from fabula.billing.v1 import billing_pb2, billing_pb2_grpc
from fabula_common.context import deadline_var
from fabula_common.errors import from_rpc_error
from fabula_common.money import to_money

log = logging.getLogger(__name__)


async def _granted(call: Awaitable[billing_pb2.Reservation]) -> None:
    try:
        await call
    except grpc.aio.AioRpcError as err:
        # A quota refusal stays one, an unreachable billing stays unavailable.
        raise from_rpc_error(err) from err


class Meter:
    def __init__(
        self, billing: billing_pb2_grpc.BillingServiceStub, release_timeout_seconds: float
    ) -> None:
        self._billing = billing
        self._release_timeout = release_timeout_seconds

    def reserve(
        self,
        user_id: str,
        reservation_id: str,
        *,
        cost_only: bool = False,
        estimated_cost: Decimal | None = None,
    ) -> Awaitable[None]:
        """Reserve one generation for the user under `reservation_id` (billing
        answers a repeat with the same reservation); with `cost_only`, its
        estimated cost alone, for a call metered as cost only (no generation
        limit applies). The request is made when this is called (sent at the
        loop's next pass); the awaitable raises QuotaExceeded (reason
        quota-exceeded) when the plan allows no more, Unavailable when billing
        cannot be reached. The call's deadline is the channel's default, never
        later than the caller's own. `estimated_cost` (None: billing's
        configured estimate) is what a caller knowing its cost better holds,
        e.g. a whole job's."""
        request = billing_pb2.ReserveGenerationRequest(
            user_id=user_id, reservation_id=reservation_id, cost_only=cost_only
        )
        if estimated_cost is not None:
            request.estimated_cost.CopyFrom(to_money(estimated_cost))
        return _granted(self._billing.ReserveGeneration(request))

    async def release(self, user_id: str, reservation_id: str) -> None:
        """Give back a reservation whose usage event is delayed. Never raises."""
        # The incoming call's deadline may be what just ran out; the release
        # must still get through, so it gets a short deadline of its own.
        token = deadline_var.set(None)
        try:
            await self._billing.ReleaseReservation(
                billing_pb2.ReleaseReservationRequest(
                    user_id=user_id, reservation_id=reservation_id
                ),
                timeout=self._release_timeout,
            )
        except Exception:
            log.warning("could not release reservation %s", reservation_id, exc_info=True)
        finally:
            deadline_var.reset(token)
