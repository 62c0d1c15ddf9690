"""`python -m fabula_media.worker`: the photo processing worker (several may run).

It consumes PhotoUploaded (a durable consumer shared by every worker, so each
event goes to one), processes the photo off the request path, sweeps photos
stuck in processing, and relays media's outbox (the PhotoProcessed events it
writes are published even when no media service runs). Configuration: the
media service's variables (MEDIA_*, NATS_*).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import uvloop
from fabula.media.v1 import events_pb2
from fabula_common.db import Database
from fabula_common.messaging.bus import EventBus, subject_for
from fabula_common.messaging.consumers import EventConsumer
from fabula_common.messaging.outbox import OutboxRelay

from fabula_media.database import outbox, processed_events
from fabula_media.photos.processing import PhotoProcessor, StuckPhotoSweeper
from fabula_media.settings import Settings
from fabula_media.storage import create_storage

log = logging.getLogger("fabula_media.worker")


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    """Run until `stop` is set; then finish the photo in hand and flush events."""
    db = Database(settings)
    bus = EventBus(settings, name="media-worker")
    storage = create_storage(settings)
    processor = PhotoProcessor(db, storage, settings)
    consumer = EventConsumer(
        db=db,
        bus=bus,
        processed=processed_events,
        service="media",
        durable="media-photo-uploaded",
        subject=subject_for(settings, "media", "photo_uploaded"),
        message_type=events_pb2.PhotoUploaded,
        handler=processor.handle_uploaded,
    )
    # In stop order: the photo in hand, the sweep, then the relay's last pass.
    workers = [
        consumer,
        StuckPhotoSweeper(processor, settings.sweep_seconds),
        OutboxRelay(db, outbox, bus, "media", settings),
    ]
    log.info("media worker started (storage %s)", storage.name)
    tasks = [asyncio.create_task(w.run(), name=type(w).__name__) for w in workers]
    try:
        await stop.wait()
    finally:
        for worker, task in zip(workers, tasks, strict=True):
            try:
                await worker.stop()
                await asyncio.wait_for(task, timeout=max(settings.shutdown_grace_seconds, 1.0))
            except Exception:  # noqa: BLE001 - stopping regardless
                log.exception("%s did not stop cleanly", type(worker).__name__)
        processor.close()
        await storage.aclose()
        await bus.close()
        await db.dispose()
        log.info("media worker stopped")


def main() -> None:
    from pydantic import ValidationError

    from fabula_common.logging import configure_logging

    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc'])) or 'settings'}: {error['msg']}"
            for error in exc.errors(include_input=False)
        )
        raise SystemExit(f"media-worker: invalid configuration: {problems}") from None
    configure_logging(
        "media-worker", settings.log_level, settings.log_format, settings.access_log_level
    )
    settings.check_production_ready()

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await run_worker(settings, stop)

    uvloop.run(run())


if __name__ == "__main__":
    main()
