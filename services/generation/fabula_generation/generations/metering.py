"""Quota for model calls: a reservation with billing before each call.

The reservation is settled (or, for a call that failed or was cancelled,
released) by billing when it consumes the call's UsageRecorded event. Only
when no event will come (the call never started, or recording it failed) is
it released here, best effort: a reservation nobody releases expires on its
own.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
from fabula.billing.v1 import billing_pb2, billing_pb2_grpc
from fabula_common.context import deadline_var
from fabula_common.errors import from_rpc_error

log = logging.getLogger(__name__)


class Meter:
    def __init__(
        self, billing: billing_pb2_grpc.BillingServiceStub, release_timeout_seconds: float
    ) -> None:
        self._billing = billing
        self._release_timeout = release_timeout_seconds
        # Strong references: the event loop keeps only weak ones to tasks.
        self._tasks: set[asyncio.Task[Any]] = set()

    async def reserve(self, user_id: str) -> str:
        """The id of a reservation of one generation for the user; QuotaExceeded
        (reason quota-exceeded) when the plan allows no more, Unavailable when
        billing cannot be reached. The call's deadline is the channel's
        default, never later than the caller's own."""
        reserving = self._spawn(
            self._billing.ReserveGeneration(billing_pb2.ReserveGenerationRequest(user_id=user_id))
        )
        try:
            reservation = await asyncio.shield(reserving)
        except asyncio.CancelledError:
            # The caller left while billing was granting: give back whatever
            # it grants, since no model call will use it.
            reserving.add_done_callback(lambda task: self._release_granted(user_id, task))
            raise
        except grpc.aio.AioRpcError as err:
            # A quota refusal stays one, an unreachable billing stays unavailable.
            raise from_rpc_error(err) from err
        return reservation.reservation_id

    async def release(self, user_id: str, reservation_id: str) -> None:
        """Give back a reservation no usage event will settle. Never raises."""
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

    async def shutdown(self) -> None:
        """Let releases in flight finish (each is bounded by its deadline)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks))

    def _release_granted(self, user_id: str, reserving: asyncio.Task[Any]) -> None:
        if reserving.cancelled() or reserving.exception() is not None:
            return
        self._spawn(self.release(user_id, reserving.result().reservation_id))

    def _spawn(self, work: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
