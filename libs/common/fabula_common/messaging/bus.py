"""NATS JetStream connection shared by a process's outbox relay and consumers,
and the stream they use: created when missing, and brought to the configured
limits (max age, max bytes, replicas) when an existing stream differs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import logging

import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import NotFoundError

from fabula_common.errors import Unavailable
from fabula_common.settings import CommonSettings

log = logging.getLogger(__name__)

# JetStream drops a re-published message whose Nats-Msg-Id it saw within this
# window: the relay may re-send after a crash between publish and mark-sent.
DUPLICATE_WINDOW_SECONDS = 600.0

# Publishes sent and not yet acknowledged that the client holds at most (the
# nats-py default); the outbox relay's passes send fewer than this at once.
PUBLISH_WINDOW = 4000


def subject_for(settings: CommonSettings, domain: str, event: str, version: int = 1) -> str:
    return f"{settings.nats_subject_prefix}.{domain}.{event}.v{version}"


def dead_letter_subject(settings: CommonSettings, consumer: str) -> str:
    """Where `consumer` puts the messages it gave up on: inside the stream,
    so dead letters are kept (and expire) like every other event."""
    return f"{settings.nats_subject_prefix}.dead_letter.{consumer}"


def stream_config(settings: CommonSettings) -> StreamConfig:
    return StreamConfig(
        name=settings.nats_stream,
        subjects=[f"{settings.nats_subject_prefix}.>"],
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        max_age=settings.nats_stream_max_age_seconds,
        max_bytes=settings.nats_stream_max_bytes,
        num_replicas=settings.nats_stream_replicas,
    )


def _limits(config: StreamConfig) -> tuple[int, int, int]:
    # The server keeps max_age in nanoseconds; compare whole milliseconds.
    return (round((config.max_age or 0) * 1000), config.max_bytes or -1, config.num_replicas or 1)


class EventBus:
    """Lazily connected; reconnects forever once connected. Callers that find
    it down get `Unavailable` and retry on their own schedule."""

    def __init__(self, settings: CommonSettings, name: str) -> None:
        self.settings = settings
        self.name = name
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._lock = asyncio.Lock()
        self._stream_ready = False
        self._closing = False
        self._reconnect_listeners: list[Callable[[], None]] = []
        self.publish_window = PUBLISH_WINDOW

    async def jetstream(self) -> JetStreamContext:
        async with self._lock:
            if self._nc is None or self._nc.is_closed:
                try:
                    # nats-py keeps retrying a refused first connection
                    # whatever its options say: bound it ourselves.
                    self._nc = await asyncio.wait_for(
                        nats.connect(
                            self.settings.nats_url,
                            name=self.name,
                            connect_timeout=self.settings.nats_timeout_seconds,
                            allow_reconnect=True,
                            max_reconnect_attempts=-1,
                            reconnect_time_wait=0.5,
                            error_cb=self._on_error,
                            disconnected_cb=self._on_disconnected,
                            reconnected_cb=self._on_reconnected,
                        ),
                        timeout=self.settings.nats_timeout_seconds + 1,
                    )
                except Exception as exc:  # noqa: BLE001 - any failure means "down"
                    self._nc = None
                    raise Unavailable(f"NATS unreachable at {self.settings.nats_url}") from exc
                self._js = self._nc.jetstream(
                    timeout=self.settings.nats_timeout_seconds,
                    publish_async_max_pending=self.publish_window,
                )
                self._stream_ready = False
            if not self._nc.is_connected:
                raise Unavailable("NATS connection lost; reconnecting")
            if not self._stream_ready:
                await self._ensure_stream()
            return self._js

    async def _ensure_stream(self) -> None:
        assert self._js is not None
        wanted = stream_config(self.settings)
        try:
            info = await self._js.stream_info(self.settings.nats_stream)
        except NotFoundError:
            try:
                await self._js.add_stream(wanted)
            except Exception:  # noqa: BLE001 - a peer process may have created it first
                info = await self._js.stream_info(self.settings.nats_stream)
            else:
                self._stream_ready = True
                return
        if _limits(info.config) != _limits(wanted):
            current = info.config
            current.max_age = wanted.max_age
            current.max_bytes = wanted.max_bytes
            current.num_replicas = wanted.num_replicas
            try:
                await self._js.update_stream(current)
                log.info(
                    "stream %s: limits set to max age %ss, max bytes %s, replicas %s",
                    wanted.name, wanted.max_age, wanted.max_bytes, wanted.num_replicas,
                )
            except Exception as exc:  # noqa: BLE001 - the stream still works as it is
                log.error("stream %s: could not apply the configured limits: %r", wanted.name, exc)
        self._stream_ready = True

    async def ping(self) -> None:
        """Raise unless NATS is connected and JetStream answers (the health
        check; the caller bounds its time)."""
        js = await self.jetstream()
        await js.account_info()

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def _on_error(self, exc: Exception) -> None:
        log.debug("nats error: %r", exc)

    async def _on_disconnected(self) -> None:
        if not self._closing:  # our own close() is no news
            log.warning("nats disconnected")

    def on_reconnected(self, listener: Callable[[], None]) -> None:
        """Call `listener` whenever the connection comes back, so a worker
        backing off (the outbox relay) resumes at once rather than at the end
        of its backoff."""
        self._reconnect_listeners.append(listener)

    async def _on_reconnected(self) -> None:
        log.info("nats reconnected")
        # The server may have restarted without its store: check the stream again.
        self._stream_ready = False
        for listener in self._reconnect_listeners:
            listener()

    async def close(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            self._closing = True
            try:
                await asyncio.wait_for(self._nc.close(), timeout=self.settings.nats_timeout_seconds)
            except Exception:  # noqa: BLE001 - closing anyway
                pass
            finally:
                self._closing = False
        self._nc = None
