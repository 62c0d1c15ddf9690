"""`python -m fabula_gateway`: serve the REST API with uvicorn."""

from __future__ import annotations

import math

import uvicorn
from fabula_common.logging import configure_logging
from fabula_common.tracing import configure_tracing

from fabula_gateway.app import create_app
from fabula_gateway.settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    configure_logging("gateway", settings.log_level, settings.log_format)
    settings.check_production_ready()
    # Before the app exists: tracing instruments the gRPC channels as they are created.
    configure_tracing("gateway")
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        lifespan="on",
        # Logging is configured above; RequestContextMiddleware writes the access log.
        log_config=None,
        access_log=False,
        proxy_headers=settings.proxy_headers,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        server_header=False,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_seconds),
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
