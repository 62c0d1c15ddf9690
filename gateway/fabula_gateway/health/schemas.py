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
                }
            ]
        }
    )

    status: Literal["ready"] = "ready"
    services: dict[str, str] = Field(
        description="Health of each backend: serving, not_serving, unknown or unreachable."
    )
