"""Wiring of the generation service process."""

from __future__ import annotations

import logging

from fabula.billing.v1 import billing_pb2_grpc
from fabula.generation.v1 import (
    council_pb2,
    council_pb2_grpc,
    generation_pb2,
    generation_pb2_grpc,
    jobs_pb2,
    jobs_pb2_grpc,
    pictures_pb2,
    pictures_pb2_grpc,
)
from fabula.users.v1 import events_pb2 as users_events
from fabula_common.db import Database
from fabula_common.grpc_client import open_channel
from fabula_common.grpc_server import GrpcApp
from fabula_common.health import NATS, POSTGRES
from fabula_common.messaging.bus import EventBus, subject_for
from fabula_common.messaging.consumers import EventConsumer
from fabula_common.messaging.outbox import OutboxRelay

from fabula_generation.council.engine import Council, CouncilEngine
from fabula_generation.council.servicer import CouncilServicer
from fabula_generation.database import outbox, processed_events
from fabula_generation.generations.metering import Meter
from fabula_generation.generations.pricing import PriceTable
from fabula_generation.generations.servicer import GenerationRecorder, GenerationServicer
from fabula_generation.generations.tasks import AbandonedGenerationSweeper
from fabula_generation.jobs.service import JobsService
from fabula_generation.jobs.servicer import JobsServicer
from fabula_generation.leaving.service import delete_user_generations
from fabula_generation.pictures.servicer import PicturesServicer
from fabula_generation.providers import GenerationProvider, create_provider
from fabula_generation.safety.moderation import moderator_for
from fabula_generation.settings import Settings
from fabula_generation.suggestions.service import SuggestionRateLimit
from fabula_generation.suggestions.servicer import SuggestionsServicer

log = logging.getLogger(__name__)

SERVICE_NAME = generation_pb2.DESCRIPTOR.services_by_name["GenerationService"].full_name
JOBS_SERVICE_NAME = jobs_pb2.DESCRIPTOR.services_by_name["JobsService"].full_name
PICTURES_SERVICE_NAME = pictures_pb2.DESCRIPTOR.services_by_name["PicturesService"].full_name
COUNCIL_SERVICE_NAME = council_pb2.DESCRIPTOR.services_by_name["CouncilService"].full_name


class Servicer(GenerationServicer, SuggestionsServicer):
    """fabula.generation.v1.GenerationService: each domain's RPCs."""

    def __init__(
        self,
        provider: GenerationProvider,
        recorder: GenerationRecorder,
        meter: Meter,
        suggestions_rate_limit: SuggestionRateLimit,
    ) -> None:
        GenerationServicer.__init__(self, provider, recorder, meter, moderator_for(provider))
        SuggestionsServicer.__init__(self, provider, recorder, meter, suggestions_rate_limit)


def create_app(settings: Settings) -> GrpcApp:
    app = GrpcApp("generation", settings)
    db = Database(settings)
    bus = EventBus(settings, name="generation")
    provider = create_provider(settings)
    prices = PriceTable.from_settings(settings)
    if not prices.is_known(provider.model):
        log.warning(
            "no price configured for model %s: billing it at the fallback price %s",
            provider.model,
            settings.fallback_price,
        )
    if provider.is_language_model:
        log.info("generation provider: %s, model %s", provider.name, provider.model)
        # The SDK's HTTP client logs every request at INFO; our own line per
        # generation says more.
        logging.getLogger("httpx2").setLevel(logging.WARNING)
    else:
        log.warning(
            "generation provider: %s, a built-in text generator, NOT a language model "
            "(set MISTRAL_API_KEY to use Mistral, or OPENAI_BASE_URL for an "
            "OpenAI-compatible server)",
            provider.name,
        )

    billing_channel = open_channel(settings.billing_addr, settings.grpc_deadline_seconds)
    meter = Meter(
        billing_pb2_grpc.BillingServiceStub(billing_channel), settings.release_timeout_seconds
    )
    usage_subject = subject_for(settings, "generation", "usage_recorded")
    recorder = GenerationRecorder(
        db,
        prices,
        usage_subject,
        meter,
        owner=settings.instance_name,
        abandon_after_seconds=settings.abandon_after_seconds,
    )
    app.add_servicer(
        generation_pb2_grpc.add_GenerationServiceServicer_to_server,
        Servicer(
            provider,
            recorder,
            meter,
            SuggestionRateLimit(
                db, settings.suggestions_rate_limit, settings.suggestions_rate_window_seconds
            ),
        ),
        SERVICE_NAME,
    )
    app.add_servicer(
        pictures_pb2_grpc.add_PicturesServiceServicer_to_server,
        PicturesServicer(provider, recorder, meter, moderator_for(provider)),
        PICTURES_SERVICE_NAME,
    )
    # Jobs are queued here and run by `python -m fabula_generation.worker`.
    app.add_servicer(
        jobs_pb2_grpc.add_JobsServiceServicer_to_server,
        JobsServicer(
            JobsService(
                db,
                meter,
                billing_pb2_grpc.BillingServiceStub(billing_channel),
                prices,
                provider.model,
                settings.jobs_running_limits,
                moderator_for(provider),
            )
        ),
        JOBS_SERVICE_NAME,
    )
    # The council: its members' providers, calls recorded like every other.
    council = Council.from_settings(settings)
    app.add_servicer(
        council_pb2_grpc.add_CouncilServiceServicer_to_server,
        CouncilServicer(
            CouncilEngine(council, recorder, meter, prices, moderator_for(provider)),
            billing_pb2_grpc.BillingServiceStub(billing_channel),
        ),
        COUNCIL_SERVICE_NAME,
    )
    # Workers stop in this order: records still being written first, then
    # the relay's last pass publishes their events.
    app.add_worker(recorder)
    app.add_worker(
        AbandonedGenerationSweeper(
            db,
            usage_subject,
            interval_seconds=settings.sweep_seconds,
            abandon_after_seconds=settings.abandon_after_seconds,
            # Made before the port opens: whatever this instance has started
            # so far, its previous run started.
            instance=settings.instance_name,
        )
    )
    app.add_worker(
        EventConsumer(
            db=db,
            bus=bus,
            processed=processed_events,
            service="generation",
            durable="generation-user-deleted",
            subject=subject_for(settings, "users", "user_deleted"),
            message_type=users_events.UserDeleted,
            handler=delete_user_generations,
        )
    )
    app.add_worker(OutboxRelay(db, outbox, bus, "generation", settings))
    app.on_shutdown(billing_channel.close)
    app.on_shutdown(provider.aclose)
    app.on_shutdown(council.aclose)
    app.on_shutdown(bus.close)
    app.on_shutdown(db.dispose)
    # Health: NOT_SERVING while the database is down; NATS down is reported
    # only (events wait in the outbox or the stream).
    app.watch_dependency(POSTGRES, db.ping)
    app.watch_dependency(NATS, bus.ping, required=False)
    return app
