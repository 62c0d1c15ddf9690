"""Wiring of the stories service."""

from __future__ import annotations

from fabula.generation.v1 import generation_pb2_grpc
from fabula.stories.v1 import stories_pb2, stories_pb2_grpc
from fabula_common.db import Database
from fabula_common.grpc_client import open_channel
from fabula_common.grpc_server import GrpcApp
from fabula_common.health import POSTGRES

from fabula_stories.settings import Settings
from fabula_stories.stories.servicer import StoriesServicer
from fabula_stories.stories.writer import StoryWriter


def create_app(settings: Settings) -> GrpcApp:
    app = GrpcApp("stories", settings)
    db = Database(settings)
    generation_channel = open_channel(
        settings.generation_addr, settings.generation_deadline_seconds
    )
    writer = StoryWriter(
        db,
        generation_pb2_grpc.GenerationServiceStub(generation_channel),
        settings,
    )
    app.add_servicer(
        stories_pb2_grpc.add_StoriesServiceServicer_to_server,
        StoriesServicer(db, writer),
        stories_pb2.DESCRIPTOR.services_by_name["StoriesService"].full_name,
    )
    # In this order: writes still in flight need generation and the database.
    app.on_shutdown(writer.shutdown)
    app.on_shutdown(generation_channel.close)
    app.on_shutdown(db.dispose)
    # Health: NOT_SERVING while the database is down.
    app.watch_dependency(POSTGRES, db.ping)
    return app
