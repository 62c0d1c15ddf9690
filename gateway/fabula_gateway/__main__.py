"""`python -m fabula_gateway`: serve the REST API with uvicorn."""

from __future__ import annotations

import math

import uvicorn
from fabula_common.logging import configure_logging
from fabula_common.processes import freeze_startup_objects
from fabula_common.tracing import configure_tracing

from fabula_gateway.app import create_app
from fabula_gateway.server import ConnectionLimits, GatewayServer, protocol_with
from fabula_gateway.settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    configure_logging(
        "gateway", settings.log_level, settings.log_format, settings.access_log_level
    )
    settings.check_production_ready()
    # Before the app exists: tracing instruments the gRPC channels as they are created.
    configure_tracing("gateway")
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=protocol_with(
            ConnectionLimits(
                max_header_bytes=settings.max_header_bytes,
                header_timeout_seconds=settings.header_timeout_seconds,
                max_connections=settings.max_connections,
            )
        ),
        ws="none",
        loop="uvloop",  # uvicorn's default when installed; said here, it is relied on
        lifespan="on",
        # Logging is configured above; RequestContextMiddleware writes the access log.
        log_config=None,
        access_log=False,
        proxy_headers=settings.proxy_headers,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        server_header=False,
        timeout_keep_alive=settings.keep_alive_timeout_seconds,  # type: ignore[arg-type]
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_seconds),
    )
    freeze_startup_objects()
    GatewayServer(config, streams_must_end=app.state.streams_must_end).run()


if __name__ == "__main__":
    main()
