"""Liveness and readiness answers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ready",
                    "services": {
                        "users": "serving",
                        "stories": "serving",
                        "generation": "serving",
                        "billing": "serving",
                    },
                    "unavailable": [],
                    "dependencies": {
                        "users": {"postgres": "up", "nats": "up"},
                        "stories": {"postgres": "up"},
                        "generation": {"postgres": "up", "nats": "up"},
                        "billing": {"postgres": "up", "nats": "up"},
                    },
                },
                {
                    "status": "degraded",
                    "services": {
                        "users": "serving",
                        "stories": "serving",
                        "generation": "serving",
                        "billing": "unreachable",
                    },
                    "unavailable": ["billing"],
                    "dependencies": {
                        "users": {"postgres": "up", "nats": "down"},
                        "stories": {"postgres": "up"},
                        "generation": {"postgres": "up", "nats": "down"},
                        "billing": {},
                    },
                },
            ]
        }
    )

    status: Literal["ready", "degraded"] = Field(
        description="`ready`: every backend is serving. `degraded`: some are not; the routes "
        "that need them answer 503, every other route works."
    )
    services: dict[str, str] = Field(
        description="Health of each backend: serving, not_serving, unknown or unreachable."
    )
    unavailable: list[str] = Field(
        default_factory=list, description="The backends that are not serving, if any."
    )
    dependencies: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Per backend, the health of each dependency it reports (`postgres`, "
        "`nats`): up, down or unknown; empty for a backend that did not answer. A backend "
        "is not serving while its database is down; NATS down only delays events.",
    )
