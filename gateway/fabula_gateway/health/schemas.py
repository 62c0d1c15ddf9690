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
