"""Wiring of the media service process."""

from __future__ import annotations

import logging

from fabula.media.v1 import media_pb2, media_pb2_grpc
from fabula.users.v1 import events_pb2 as users_events
from fabula_common.db import Database
from fabula_common.grpc_server import GrpcApp
from fabula_common.health import NATS, POSTGRES
from fabula_common.messaging.bus import EventBus, subject_for
from fabula_common.messaging.consumers import EventConsumer
from fabula_common.messaging.outbox import OutboxRelay

from fabula_media.database import outbox, processed_events
from fabula_media.leaving.service import user_photos_deleter
from fabula_media.photos.service import PhotosService
from fabula_media.photos.servicer import MediaServicer
from fabula_media.settings import Settings
from fabula_media.storage import create_storage

log = logging.getLogger(__name__)

SERVICE_NAME = media_pb2.DESCRIPTOR.services_by_name["MediaService"].full_name


def create_app(settings: Settings) -> GrpcApp:
    app = GrpcApp("media", settings)
    db = Database(settings)
    bus = EventBus(settings, name="media")
    storage = create_storage(settings)
    log.info("media storage: %s", storage.name)
    app.add_servicer(
        media_pb2_grpc.add_MediaServiceServicer_to_server,
        MediaServicer(PhotosService(db, storage, settings)),
        SERVICE_NAME,
    )
    app.add_worker(
        EventConsumer(
            db=db,
            bus=bus,
            processed=processed_events,
            service="media",
            durable="media-user-deleted",
            subject=subject_for(settings, "users", "user_deleted"),
            message_type=users_events.UserDeleted,
            handler=user_photos_deleter(storage),
        )
    )
    app.add_worker(OutboxRelay(db, outbox, bus, "media", settings))
    app.on_shutdown(storage.aclose)
    app.on_shutdown(bus.close)
    app.on_shutdown(db.dispose)
    # Health: NOT_SERVING while the database is down; NATS down is reported
    # only (events wait in the outbox or the stream).
    app.watch_dependency(POSTGRES, db.ping)
    app.watch_dependency(NATS, bus.ping, required=False)
    return app
