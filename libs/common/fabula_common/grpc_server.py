"""gRPC server bootstrap and the one server interceptor.

`GrpcApp` starts a grpc.aio server with standard health and reflection,
the interceptor (request id, deadline, metrics, error mapping), optional
background workers (outbox relay, consumers), health that follows the
dependencies the service declares (fabula_common.health) and graceful shutdown
on SIGTERM/SIGINT: health goes NOT_SERVING, calls in flight get the grace
period, workers flush, then the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import grpc
import uvloop
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server
from fabula_common.context import (
    CHILD_SAFE_HEADER,
    child_safe_var,
    new_request_id,
    request_id_var,
    set_deadline_in,
)
from fabula_common.db_errors import classify_database_error
from fabula_common.errors import FabulaError, Unavailable, from_rpc_error
from fabula_common.health import LIVENESS, SERVING, DependencyCheck, DependencyMonitor
from fabula_common.messaging.headers import REQUEST_ID_HEADER
from fabula_common.metrics import GRPC_HANDLED, GRPC_LATENCY
from fabula_common.settings import ServiceSettings

log = logging.getLogger(__name__)
access_log = logging.getLogger("fabula.grpc.access")
# Statuses that mean the service (or what it depends on) failed, not the caller.
_SERVER_FAILURES = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.DATA_LOSS,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)

def _map_exception(exc: BaseException) -> FabulaError:
    """Any exception as the domain error the caller is told about."""
    if isinstance(exc, grpc.aio.AioRpcError):
        return from_rpc_error(exc)
    if isinstance(exc, FabulaError):
        return exc
    # A database that is down, restarting, overloaded or too slow: 503 with a
    # retry delay (a lost serialization race: ABORTED, retry at once).
    transient = classify_database_error(exc)
    if transient is not None:
        return transient
    return FabulaError("internal error")


class ServerInterceptor(grpc.aio.ServerInterceptor):
    """Request id and deadline into context, metrics, and domain errors to rich statuses."""

    def __init__(self, service: str, dependencies: DependencyMonitor | None = None) -> None:
        self.service = service
        self.dependencies = dependencies

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith("/grpc."):
            return handler
        method = handler_call_details.method.rsplit("/", 1)[-1]
        metadata = dict(handler_call_details.invocation_metadata or ())
        request_id = metadata.get(REQUEST_ID_HEADER) or new_request_id()
        child_safe = metadata.get(CHILD_SAFE_HEADER) == "1"

        def single_answer(behaviour):
            """Wraps a call with one answer, whether it takes one request or a stream."""

            async def call(request_or_iterator, context):
                self._enter(context, request_id, child_safe)
                started = time.perf_counter()
                try:
                    self._refuse_while_a_dependency_is_down()
                    response = await behaviour(request_or_iterator, context)
                except Exception as exc:  # noqa: BLE001 - mapped to a status
                    await self._abort(context, exc, method, started)
                self._observe(method, grpc.StatusCode.OK, started)
                return response

            return call

        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                single_answer(handler.unary_unary),
                handler.request_deserializer,
                handler.response_serializer,
            )

        if handler.unary_stream and inspect.isasyncgenfunction(handler.unary_stream):
            behaviour = handler.unary_stream

            async def unary_stream(request, context):
                self._enter(context, request_id, child_safe)
                started = time.perf_counter()
                try:
                    self._refuse_while_a_dependency_is_down()
                    async for item in behaviour(request, context):
                        yield item
                except asyncio.CancelledError:
                    self._observe(method, grpc.StatusCode.CANCELLED, started)
                    raise
                except Exception as exc:  # noqa: BLE001 - mapped to a status
                    await self._abort(context, exc, method, started)
                self._observe(method, grpc.StatusCode.OK, started)

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, handler.request_deserializer, handler.response_serializer
            )

        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                single_answer(handler.stream_unary),
                handler.request_deserializer,
                handler.response_serializer,
            )
        return handler

    @staticmethod
    def _enter(context: grpc.aio.ServicerContext, request_id: str, child_safe: bool) -> None:
        request_id_var.set(request_id)
        child_safe_var.set(child_safe)
        set_deadline_in(context.time_remaining())

    def _refuse_while_a_dependency_is_down(self) -> None:
        down = self.dependencies.refused_for if self.dependencies else None
        if down is not None:
            raise Unavailable(
                f"{down} is not answering {self.service}", retry_after=self.dependencies.interval
            )

    def _observe(self, method: str, code: grpc.StatusCode, started: float) -> None:
        elapsed = time.perf_counter() - started
        GRPC_HANDLED.labels(self.service, method, code.name).inc()
        GRPC_LATENCY.labels(self.service, method).observe(elapsed)
        # One line per call, carrying the request id the gateway assigned:
        # DEBUG unless the service failed (see ACCESS_LOG_LEVEL).
        level = logging.INFO if code in _SERVER_FAILURES else logging.DEBUG
        if access_log.isEnabledFor(level):
            access_log.log(
                level, "%s %s %.1fms", method, code.name, elapsed * 1000,
                extra={"grpc_method": method, "grpc_code": code.name, "duration_ms": round(elapsed * 1000, 1)},
            )

    async def _abort(self, context, exc: BaseException, method: str, started: float) -> None:
        if isinstance(exc, grpc.aio.AbortError):
            raise exc
        error = _map_exception(exc)
        if error.code is grpc.StatusCode.INTERNAL:
            log.exception("unhandled error in %s", method, exc_info=exc)
        elif error.code is grpc.StatusCode.UNAVAILABLE:
            log.warning("%s failed: %s (%r)", method, error.message, exc)
        self._observe(method, error.code, started)
        # The standard rich status: ErrorInfo (reason, metadata) and RetryInfo.
        status = error.to_status()
        await context.abort(status.code, status.details, trailing_metadata=status.trailing_metadata)


class BackgroundWorker(Protocol):
    """A long-running task owned by the process (outbox relay, consumer).
    `stop()` asks `run()` to finish what it is doing and return."""

    async def run(self) -> None: ...

    async def stop(self) -> None: ...


class GrpcApp:
    def __init__(self, service: str, settings: ServiceSettings) -> None:
        self.service = service
        self.settings = settings
        self.health = health_aio.HealthServicer()
        self.dependencies = DependencyMonitor(
            service,
            self.health,
            interval=settings.health_check_interval_seconds,
            timeout=settings.health_check_timeout_seconds,
        )
        self.server = grpc.aio.server(
            interceptors=[ServerInterceptor(service, self.dependencies)],
            # Message size cap and connection age (clients re-resolve and rebalance).
            options=settings.grpc_server_options(),
        )
        self._service_names: list[str] = []
        self._workers: list[BackgroundWorker] = []
        self._on_startup: list[Callable[[], Awaitable[Any]]] = []
        self._on_shutdown: list[Callable[[], Awaitable[Any]]] = []
        self._stopping = asyncio.Event()

    def add_servicer(self, add_to_server: Callable, servicer: Any, full_name: str) -> None:
        add_to_server(servicer, self.server)
        self._service_names.append(full_name)

    def watch_dependency(
        self, name: str, probe: Callable[[], Awaitable[Any]], *, required: bool = True
    ) -> None:
        """Probe a dependency every HEALTH_CHECK_INTERVAL_SECONDS and report it
        as `<service>/<name>`; while a `required` one is down the whole service
        reports NOT_SERVING (fabula_common.health)."""
        self.dependencies.add(DependencyCheck(name, probe, required))

    def add_worker(self, worker: BackgroundWorker) -> None:
        self._workers.append(worker)

    def on_startup(self, callback: Callable[[], Awaitable[Any]]) -> None:
        """Await `callback` before the port opens (e.g. recovery of what a
        previous incarnation left); it should bound its own duration."""
        self._on_startup.append(callback)

    def on_shutdown(self, callback: Callable[[], Awaitable[Any]]) -> None:
        self._on_shutdown.append(callback)

    def request_stop(self) -> None:
        self._stopping.set()

    async def run(self, *, handle_signals: bool = True) -> None:
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            [*self._service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
             reflection.SERVICE_NAME],
            self.server,
        )
        address = self.settings.grpc_listen_address
        if self.server.add_insecure_port(address) == 0:
            raise SystemExit(f"{self.service}: cannot listen on {address}")
        # Health is true from the first answer: the dependencies are checked
        # before the port opens.
        await self.health.set(LIVENESS, SERVING)
        await self.dependencies.check_once(self._service_names)
        for callback in self._on_startup:
            await callback()
        await self.server.start()
        monitor = asyncio.create_task(
            self.dependencies.run(self._service_names), name="DependencyMonitor"
        )
        if self.settings.metrics_port:
            start_http_server(self.settings.metrics_port, addr=self.settings.grpc_host)
        tasks = [asyncio.create_task(w.run(), name=type(w).__name__) for w in self._workers]
        if handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop)
        log.info("%s listening on %s", self.service, address)
        try:
            await self._stopping.wait()
        finally:
            await self._shutdown(tasks, monitor)

    async def _shutdown(self, tasks: list[asyncio.Task], monitor: asyncio.Task) -> None:
        grace = self.settings.shutdown_grace_seconds
        log.info("%s shutting down (grace %.1fs)", self.service, grace)
        # Load balancers and the gateway's /readyz see NOT_SERVING first.
        await self.health.enter_graceful_shutdown()
        # A probe in flight has nothing left to tell anyone.
        self.dependencies.stop()
        monitor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await monitor
        if self.settings.shutdown_drain_seconds:
            await asyncio.sleep(self.settings.shutdown_drain_seconds)
        await self.server.stop(grace)
        # In order: each worker is told to stop and its own loop finishes
        # (e.g. the outbox relay's last pass) before the next one is stopped.
        for worker, task in zip(self._workers, tasks, strict=True):
            try:
                await worker.stop()
                await asyncio.wait_for(task, timeout=max(grace, 1.0))
            except Exception:  # noqa: BLE001 - shutting down regardless
                log.exception("worker %s did not stop cleanly", type(worker).__name__)
        for callback in self._on_shutdown:
            await callback()
        log.info("%s stopped", self.service)


def serve(service: str, settings_class: type[ServiceSettings], create_app: Callable[[Any], GrpcApp]) -> None:
    """Entry point of a service process (`python -m fabula_<svc>`).

    Bad configuration ends the process with one line naming each bad variable
    (never its value: it may be a secret). The app is built inside the event
    loop: grpc.aio servers and channels bind to the loop current at creation.
    """
    from fabula_common.processes import freeze_startup_objects, load_process_settings
    from fabula_common.tracing import configure_tracing

    settings = load_process_settings(service, settings_class)
    # Before the app exists: tracing instruments servers and channels as they are created.
    configure_tracing(service)

    async def main() -> None:
        app = create_app(settings)
        freeze_startup_objects()
        await app.run()

    # uvloop rather than asyncio's own loop: the same API, with the loop's
    # own work (polling, callbacks, sockets: asyncpg's especially) in C.
    uvloop.run(main())
