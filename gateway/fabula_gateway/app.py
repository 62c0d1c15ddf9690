"""The FastAPI application: the only public REST surface of Fabula."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fabula_common.messaging.headers import REQUEST_ID_HEADER
from fabula_common.tokens import VerifiedTokens
from fabula_common.tracing import flush_tracing, tracing_provider
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from fabula_gateway.account import routes as account
from fabula_gateway.admin import routes as admin
from fabula_gateway.api_keys import routes as api_keys
from fabula_gateway.billing import routes as billing
from fabula_gateway.clients import ServiceClients
from fabula_gateway.conversations import routes as conversations
from fabula_gateway.handlers import install_exception_handlers
from fabula_gateway.health import routes as health
from fabula_gateway.identities import routes as identities
from fabula_gateway.metrics import serve_metrics
from fabula_gateway.middleware import (
    BodyLimitMiddleware,
    ConcurrencyLimitMiddleware,
    RequestContextMiddleware,
    loggable_path,
)
from fabula_gateway.openapi import (
    API_DESCRIPTION,
    API_TITLE,
    API_VERSION,
    TAGS,
    install_openapi,
    require_operation_id,
)
from fabula_gateway.payments import routes as payments
from fabula_gateway.pictures import routes as pictures
from fabula_gateway.photos import routes as photos
from fabula_gateway.principals import PrincipalCache
from fabula_gateway.projects import jobs as project_jobs
from fabula_gateway.projects import routes as projects
from fabula_gateway.settings import GatewaySettings
from fabula_gateway.stories import lore
from fabula_gateway.stories import discovery as story_discovery
from fabula_gateway.stories import exchange as story_exchange
from fabula_gateway.stories import routes as stories
from fabula_gateway.stories import sharing as story_sharing
from fabula_gateway.suggestions import routes as suggestions
from fabula_gateway.stories import shaping as story_shaping
from fabula_gateway.users import routes as users
from fabula_gateway.webapp.routes import install_webapp


def create_app(settings: GatewaySettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        clients = ServiceClients.open(settings)
        app.state.clients = clients
        # Prometheus scrapes its own listener, never the public API port.
        metrics_server = (
            serve_metrics(settings.metrics_host, settings.metrics_port)
            if settings.metrics_port
            else None
        )
        try:
            yield
        finally:
            if metrics_server is not None:
                metrics_server.shutdown()
                metrics_server.server_close()
            await clients.close()
            flush_tracing()

    app = FastAPI(
        title=API_TITLE,
        version=API_VERSION,
        description=API_DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        generate_unique_id_function=require_operation_id,
    )
    app.state.settings = settings
    app.state.tokens = VerifiedTokens(settings)
    app.state.principals = PrincipalCache(
        ttl_seconds=settings.auth_cache_ttl_seconds,
        max_entries=settings.auth_cache_max_entries,
    )
    # Set by the server (server.py) when open event streams must end: shutdown.
    app.state.streams_must_end = asyncio.Event()

    # A request is matched against the routes in this order, one by one, so
    # the most requested come first: reading and writing stories. And
    # story_discovery before stories: /v1/stories/stats is not a story id
    # (no other path of one module matches a path of another; a test checks).
    modules = (
        story_discovery,
        stories,
        users,
        identities,
        api_keys,
        admin,
        account,
        lore,
        story_sharing,
        story_exchange,
        story_shaping,
        suggestions,
        projects,
        project_jobs,
        conversations,
        pictures,
        photos,
        billing,
        payments,
        health,
    )
    for module in modules:
        app.include_router(module.router)

    install_exception_handlers(app)
    install_openapi(app)
    install_webapp(app)

    # The last added is outermost. From the outside in: CORS, request context,
    # concurrency limit, body limit; so 413s, 503s and 500s carry the request
    # id and CORS headers too.
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=settings.max_body_bytes,
        timeout_seconds=settings.body_timeout_seconds,
        streamed_prefixes=(photos.UPLOADS_PATH,),
    )
    app.add_middleware(ConcurrencyLimitMiddleware, limit=settings.max_concurrent_requests)
    app.add_middleware(RequestContextMiddleware)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Accept", REQUEST_ID_HEADER],
            expose_headers=[REQUEST_ID_HEADER, "Location", "Retry-After", "WWW-Authenticate"],
            max_age=600,
        )
    if tracing_provider() is not None:
        _trace_requests(app)
    return app


def _trace_requests(app: FastAPI) -> None:
    """A server span per request (continuing a caller's `traceparent`); the
    gRPC calls it makes are its children."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=tracing_provider(),
        # Probes would drown the real requests.
        excluded_urls="/healthz,/readyz",
        # One span per request, not one more per body chunk of a stream.
        exclude_spans=["receive", "send"],
        server_request_hook=_redact_span_paths,
    )


# The request attributes that carry the path (old and new HTTP conventions).
_PATH_ATTRIBUTES = ("http.target", "http.url", "url.path", "url.full")


def _redact_span_paths(span, scope) -> None:
    """A share link's token is a credential: spans keep only its start."""
    path = scope.get("path", "")
    if loggable_path(path) == path or not span.is_recording():
        return
    attributes = getattr(span, "attributes", None) or {}
    for name in _PATH_ATTRIBUTES:
        value = attributes.get(name)
        if isinstance(value, str):
            span.set_attribute(name, value.replace(path, loggable_path(path)))
