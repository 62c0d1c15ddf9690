"""JSON logs (one object per line) carrying the service name and request id."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from fabula_common.context import request_id_var


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.request_id = request_id_var.get()
        return True


# One line per REST request (gateway), gRPC call or consumed event (services).
ACCESS_LOGGERS = ("fabula_gateway.access", "fabula.grpc.access", "fabula.events.access")


def configure_logging(
    service: str, level: str = "INFO", fmt: str = "json", access_level: str | None = None
) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ContextFilter(service))
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}{service}{request_id}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(service)s [%(request_id)s] %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ACCESS_LOGGERS:
        logging.getLogger(name).setLevel(access_level.upper() if access_level else logging.NOTSET)
    # Access-log noise from libraries is not ours to print at INFO.
    for noisy in ("asyncio", "nats", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
