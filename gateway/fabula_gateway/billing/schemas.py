"""The plan and its usage: responses."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field


class Usage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "plan": "free",
                    "period_start": "2025-01-01T00:00:00Z",
                    "period_end": "2025-02-01T00:00:00Z",
                    "generations_used": 12,
                    "generations_limit": 50,
                    "cost_used_usd": "0.0240",
                    "cost_limit_usd": "1.00",
                }
            ]
        }
    )

    plan: str
    period_start: dt.datetime
    period_end: dt.datetime
    generations_used: int
    generations_limit: int | None = Field(description="Null when the plan is unlimited.")
    cost_used_usd: str = Field(description="US dollars as a decimal string.")
    cost_limit_usd: str | None = Field(
        description="US dollars as a decimal string; null when the plan is unlimited."
    )
