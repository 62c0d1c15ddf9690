"""What a service's grpc.health.v1 says, kept true by checking its dependencies.

Every few seconds (HEALTH_CHECK_INTERVAL_SECONDS) each dependency a service
declares (its database, NATS) is probed, each probe bounded by
HEALTH_CHECK_TIMEOUT_SECONDS so a frozen server reads as down instead of
hanging the check. The health servicer then holds:

- `"<service>/<dependency>"` (e.g. `users/postgres`, `users/nats`): SERVING
  while that dependency answers, NOT_SERVING while it does not;
- `""` and each gRPC service's full name: NOT_SERVING while a dependency the
  service cannot work without (its database) is down. A dependency it can do
  without for a while (NATS: producers keep writing to their outbox, which is
  the point of the outbox; consumers wait) is reported but does not fail it;
- `"liveness"`: SERVING until shutdown whatever the dependencies say, for
  liveness probes (restarting a process does not bring its database back).

A required dependency that failed `REFUSE_AFTER_FAILED_PROBES` probes in a
row is named in `refused_for`: the service then refuses its calls at once
(UNAVAILABLE, retry after one interval) instead of letting each wait out its
deadline on a database that does not answer (a frozen or unreachable one; a
stopped one refuses connections by itself). One failed probe is not enough:
a single slow answer under load must not turn into refusals. The probe after
a required dependency's first failure comes at once, not an interval later:
calls that would wait out their deadlines are refused that much sooner.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio

from fabula_common.tasks import abandon

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# Health name answering only "is the process alive" (liveness and startup probes).
LIVENESS = "liveness"
# Dependencies whose health a service may report (the gateway asks for these).
POSTGRES = "postgres"
NATS = "nats"
REFUSE_AFTER_FAILED_PROBES = 2


def dependency_health_name(service: str, dependency: str) -> str:
    """The health name of one dependency of a service, e.g. `users/postgres`."""
    return f"{service}/{dependency}"


@dataclass(frozen=True)
class DependencyCheck:
    name: str
    # Returns when the dependency answers; raises (or is cancelled at the
    # timeout) when it does not.
    probe: Callable[[], Awaitable[object]]
    # The service cannot serve while this dependency is down.
    required: bool = True


class DependencyMonitor:
    """Probes the dependencies of one service and sets its health statuses."""

    def __init__(
        self,
        service: str,
        health: health_aio.HealthServicer,
        *,
        interval: float,
        timeout: float,
    ) -> None:
        self.service = service
        self.health = health
        self.interval = interval
        self.timeout = timeout
        self.checks: list[DependencyCheck] = []
        # Probes failed in a row per dependency (0: up).
        self._failed_in_a_row: dict[str, int] = {}
        # Set once per round of probes, read on every call the service serves.
        self.refused_for: str | None = None
        self._stopping = asyncio.Event()

    def add(self, check: DependencyCheck) -> None:
        self.checks.append(check)

    async def _probe(self, check: DependencyCheck) -> bool:
        # The probe is not waited for past the timeout, its clean-up neither:
        # cancelled on a frozen server, a database probe still closes its
        # connection (a rollback the server never answers), which held the
        # verdict seconds past the timeout.
        probing = asyncio.ensure_future(check.probe())
        try:
            done, _ = await asyncio.wait({probing}, timeout=self.timeout)
        except asyncio.CancelledError:  # the monitor stops
            probing.cancel()
            raise
        try:
            if not done:
                abandon(probing)
                raise TimeoutError
            probing.result()
        except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 - any failure means "down"
            if not self._failed_in_a_row.get(check.name):
                log.warning(
                    "%s: dependency %s is down: %s",
                    self.service, check.name, _describe(exc, self.timeout),
                )
            return False
        if self._failed_in_a_row.get(check.name):
            log.info("%s: dependency %s is back", self.service, check.name)
        return True

    async def check_once(self, service_names: Iterable[str]) -> bool:
        """Probe every dependency at once and publish the result; True when
        the service can serve (every required dependency is up)."""
        results = await asyncio.gather(*(self._probe(check) for check in self.checks))
        serving = True
        for check, up in zip(self.checks, results, strict=True):
            failed_before = self._failed_in_a_row.get(check.name, 0)
            self._failed_in_a_row[check.name] = 0 if up else failed_before + 1
            await self.health.set(
                dependency_health_name(self.service, check.name), SERVING if up else NOT_SERVING
            )
            serving = serving and (up or not check.required)
        self.refused_for = next(
            (
                check.name
                for check in self.checks
                if check.required
                and self._failed_in_a_row[check.name] >= REFUSE_AFTER_FAILED_PROBES
            ),
            None,
        )
        for name in ["", *service_names]:
            await self.health.set(name, SERVING if serving else NOT_SERVING)
        return serving

    async def run(self, service_names: Iterable[str]) -> None:
        """Check every `interval` seconds until `stop()`."""
        names = list(service_names)
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=self._pause())
            except TimeoutError:
                await self.check_once(names)

    def _pause(self) -> float:
        """The interval; none while a required dependency's failure awaits
        confirmation (failed, not yet enough times in a row to refuse calls)."""
        confirming = any(
            check.required
            and 0 < self._failed_in_a_row.get(check.name, 0) < REFUSE_AFTER_FAILED_PROBES
            for check in self.checks
        )
        return 0 if confirming else self.interval

    def stop(self) -> None:
        self._stopping.set()


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError) and not str(exc):
        return f"no answer within {timeout:g}s"
    return f"{type(exc).__name__}: {exc}"
