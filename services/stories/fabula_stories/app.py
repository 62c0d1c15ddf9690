"""Wiring of the stories service."""

from __future__ import annotations

from fabula.billing.v1 import events_pb2 as billing_events
from fabula.generation.v1 import council_pb2_grpc, generation_pb2_grpc
from fabula.generation.v1 import events_pb2 as generation_events
from fabula.generation.v1 import pictures_pb2_grpc as generation_pictures_grpc
from fabula.media.v1 import events_pb2 as media_events
from fabula.media.v1 import media_pb2_grpc
from fabula.stories.v1 import (
    conversations_pb2,
    conversations_pb2_grpc,
    pictures_pb2,
    pictures_pb2_grpc,
    projects_pb2,
    projects_pb2_grpc,
    stories_pb2,
    stories_pb2_grpc,
)
from fabula.users.v1 import events_pb2 as users_events
from fabula_common.db import Database
from fabula_common.grpc_client import open_channel
from fabula_common.grpc_server import GrpcApp
from fabula_common.health import NATS, POSTGRES
from fabula_common.messaging.bus import EventBus, subject_for
from fabula_common.messaging.consumers import EventConsumer
from fabula_common.messaging.outbox import OutboxRelay

from fabula_stories.conversations.plans import record_plan
from fabula_stories.conversations.servicer import ConversationsServicer
from fabula_stories.conversations.writer import ConversationWriter
from fabula_stories.database import outbox, processed_events
from fabula_stories.discovery.servicer import DiscoveryServicer
from fabula_stories.exchange.servicer import ExchangeServicer
from fabula_stories.idempotency.tasks import ExpiredKeysPurger
from fabula_stories.leaving.service import delete_user_data
from fabula_stories.lore.servicer import LoreServicer
from fabula_stories.pictures.events import forget_photo
from fabula_stories.pictures.media import Media
from fabula_stories.pictures.servicer import DrawingsServicer, TutorialsServicer
from fabula_stories.pictures.writer import PictureStoryWriter
from fabula_stories.projects.events import record_narrative
from fabula_stories.projects.servicer import ProjectsServicer
from fabula_stories.settings import Settings
from fabula_stories.sharing.servicer import SharingServicer
from fabula_stories.stories.events import DeliverySubjects
from fabula_stories.stories.servicer import StoriesServicer
from fabula_stories.stories.tasks import ClaimSweeper
from fabula_stories.stories.writer import StoryWriter


class Servicer(
    DiscoveryServicer, SharingServicer, LoreServicer, ExchangeServicer, StoriesServicer
):
    """fabula.stories.v1.StoriesService: each domain's methods, one servicer."""

    def __init__(
        self,
        db: Database,
        writer: StoryWriter,
        generation: generation_pb2_grpc.GenerationServiceStub,
        settings: Settings,
    ) -> None:
        StoriesServicer.__init__(self, db, writer)
        LoreServicer.__init__(self, db, generation, settings)
        ExchangeServicer.__init__(self, db)


def create_app(settings: Settings) -> GrpcApp:
    app = GrpcApp("stories", settings)
    db = Database(settings)
    bus = EventBus(settings, name="stories")
    generation_channel = open_channel(
        settings.generation_addr, settings.generation_deadline_seconds
    )
    generation = generation_pb2_grpc.GenerationServiceStub(generation_channel)
    writer = StoryWriter(db, generation, settings)
    app.add_servicer(
        stories_pb2_grpc.add_StoriesServiceServicer_to_server,
        Servicer(db, writer, generation, settings),
        stories_pb2.DESCRIPTOR.services_by_name["StoriesService"].full_name,
    )
    app.add_servicer(
        projects_pb2_grpc.add_ProjectsServiceServicer_to_server,
        ProjectsServicer(db),
        projects_pb2.DESCRIPTOR.services_by_name["ProjectsService"].full_name,
    )
    # Generation's CouncilService, on the same channel as its GenerationService.
    conversation_writer = ConversationWriter(
        db, council_pb2_grpc.CouncilServiceStub(generation_channel), settings
    )
    app.add_servicer(
        conversations_pb2_grpc.add_ConversationsServiceServicer_to_server,
        ConversationsServicer(db, conversation_writer, settings.council_free_retention_days),
        conversations_pb2.DESCRIPTOR.services_by_name["ConversationsService"].full_name,
    )
    app.add_worker(conversation_writer)
    # Pictures: photos are media's (read through its contract), the model
    # call is generation's PicturesService.
    media_channel = open_channel(settings.media_addr, settings.grpc_deadline_seconds)
    media = Media(media_pb2_grpc.MediaServiceStub(media_channel))
    picture_writer = PictureStoryWriter(
        db,
        media,
        generation_pictures_grpc.PicturesServiceStub(generation_channel),
        # Its claims are renewed, detached and discarded as segments' are.
        writer,
        settings,
    )
    app.add_servicer(
        pictures_pb2_grpc.add_TutorialsServiceServicer_to_server,
        TutorialsServicer(db),
        pictures_pb2.DESCRIPTOR.services_by_name["TutorialsService"].full_name,
    )
    app.add_servicer(
        pictures_pb2_grpc.add_DrawingsServiceServicer_to_server,
        DrawingsServicer(db, media, picture_writer),
        pictures_pb2.DESCRIPTOR.services_by_name["DrawingsService"].full_name,
    )
    # Stopped in this order: writes in flight finish (and report their
    # generations delivered or discarded) before the relay's last pass.
    app.add_worker(writer)
    sweeper = ClaimSweeper(
        db,
        DeliverySubjects.for_settings(settings),
        settings.sweep_interval_seconds,
        owner=settings.instance_name,
    )
    # A restarted process frees the stories its previous incarnation was
    # writing before it takes calls, rather than after their leases.
    app.on_startup(sweeper.recover_on_startup)
    app.add_worker(sweeper)
    app.add_worker(ExpiredKeysPurger(db, settings.idempotency_key_purge_interval_seconds))

    def consume(durable: str, domain: str, event: str, message_type, handler) -> None:
        """Apply a peer's events (an idempotent consumer with its own inbox rows)."""
        app.add_worker(
            EventConsumer(
                db=db,
                bus=bus,
                processed=processed_events,
                service="stories",
                durable=durable,
                subject=subject_for(settings, domain, event),
                message_type=message_type,
                handler=handler,
            )
        )

    consume("stories-user-deleted", "users", "user_deleted", users_events.UserDeleted, delete_user_data)
    consume(
        "stories-job-completed",
        "generation",
        "job_completed",
        generation_events.JobCompleted,
        record_narrative,
    )
    # The user's plan, for the free plan's retention of conversations.
    consume("stories-plan-changed", "billing", "plan_changed", billing_events.PlanChanged, record_plan)
    consume(
        "stories-photo-deleted", "media", "photo_deleted", media_events.PhotoDeleted, forget_photo
    )
    app.add_worker(OutboxRelay(db, outbox, bus, "stories", settings))
    # Workers have stopped before these run.
    app.on_shutdown(generation_channel.close)
    app.on_shutdown(media_channel.close)
    app.on_shutdown(bus.close)
    app.on_shutdown(db.dispose)
    # Health: NOT_SERVING while the database is down; NATS down is reported
    # but not fatal (delivery events wait in the outbox).
    app.watch_dependency(POSTGRES, db.ping)
    app.watch_dependency(NATS, bus.ping, required=False)
    return app
