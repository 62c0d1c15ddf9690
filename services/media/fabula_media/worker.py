"""`python -m fabula_media.worker`: the photo processing worker (several may run).

It consumes PhotoUploaded (a durable consumer shared by every worker, so each
event goes to one), processes the photo off the request path, sweeps photos
stuck in processing, and relays media's outbox (the PhotoProcessed events it
writes are published even when no media service runs). Configuration: the
media service's variables (MEDIA_*, NATS_*).
"""

from __future__ import annotations

import asyncio
import logging

from fabula.media.v1 import events_pb2
from fabula_common.db import Database
from fabula_common.messaging.bus import EventBus, subject_for
from fabula_common.messaging.consumers import EventConsumer
from fabula_common.messaging.outbox import OutboxRelay
from fabula_common.processes import run_until_stopped, run_worker_process

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
    try:
        await run_until_stopped(workers, stop, settings.shutdown_grace_seconds)
    finally:
        processor.close()
        await storage.aclose()
        await bus.close()
        await db.dispose()
        log.info("media worker stopped")


def main() -> None:
    run_worker_process("media-worker", Settings, run_worker)


if __name__ == "__main__":
    main()
