"""The plan and its usage: responses."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

USD_STRING = "US dollars as a decimal string."


class Usage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "plan": "free",
                    "period_start": "2025-01-01T00:00:00Z",
                    "period_end": "2025-02-01T00:00:00Z",
                    "generations_used": 3,
                    "generations_in_progress": 1,
                    "generations_limit": 5,
                    "cost_used_usd": "0.0240",
                    "cost_limit_usd": "10",
                }
            ]
        }
    )

    plan: str
    period_start: dt.datetime
    period_end: dt.datetime
    generations_used: int = Field(
        description="Generations this period counts against the plan, true the moment a "
        "call returns: those settled plus those in progress. A generation that fails is "
        "given back and drops out."
    )
    generations_in_progress: int = Field(
        description="Of `generations_used`, those not settled yet: being written, or "
        "returned and waiting for billing to record their usage (seconds, usually)."
    )
    generations_limit: int | None = Field(description="Null when the plan is unlimited.")
    cost_used_usd: str = Field(
        description=USD_STRING + " What recorded model calls cost this period (settled only)."
    )
    cost_limit_usd: str | None = Field(
        description="US dollars as a decimal string; null when the plan is unlimited."
    )


class UsageLog(BaseModel):
    """One model call, as the usage ledger recorded it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "1842",
                    "created_at": "2025-01-14T09:30:12Z",
                    "operation": "continuation",
                    "story_id": "5b0c3f0e-6a9f-4f55-9c1e-3d9c1b7a2f10",
                    "provider": "mistral",
                    "model": "mistral-small-latest",
                    "prompt_tokens": 812,
                    "completion_tokens": 301,
                    "cost_usd": "0.00034",
                    "estimated": False,
                    "outcome": "completed",
                    "counted": True,
                    "generation_id": "0b9f7c7e-2f4e-4a57-8d53-3c7e0a9f1d22",
                    "attributes": {},
                    "production_type": None,
                },
                {
                    "id": "1843",
                    "created_at": "2025-01-14T09:41:02Z",
                    "operation": "job_stage",
                    "story_id": None,
                    "provider": "mistral",
                    "model": "mistral-small-latest",
                    "prompt_tokens": 1420,
                    "completion_tokens": 1903,
                    "cost_usd": "0.00171",
                    "estimated": False,
                    "outcome": "completed",
                    "counted": False,
                    "generation_id": "5d7e1b0a-8c1f-4a57-9d53-1c7e0a9f1d22",
                    "attributes": {
                        "production_type": "short_story",
                        "stage": "draft-1",
                        "job_id": "8a1c2e0f-6a9f-4f55-9c1e-3d9c1b7a2f10",
                    },
                    "production_type": "short_story",
                },
            ]
        }
    )

    id: str
    created_at: dt.datetime = Field(description="When the model call ended.")
    operation: str = Field(
        description="What the call was for: `opening`, `continuation`, `ending`, "
        "`suggestion`, `job_stage` (a stage of a long-form job), or a later kind."
    )
    story_id: str | None = Field(description="The story the call was about; null otherwise.")
    provider: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: str = Field(description=USD_STRING)
    estimated: bool = Field(
        description="The provider reported no token counts; they were estimated."
    )
    outcome: str = Field(description="`completed`, `cancelled` or `failed`.")
    counted: bool = Field(
        description="Whether the call counted as a generation of the plan (a failed or "
        "discarded one is paid for its tokens but not counted)."
    )
    generation_id: str
    attributes: dict[str, str] = Field(
        description="What the producer said about the call: for a job stage "
        "`production_type`, `stage` and `job_id`; empty otherwise."
    )
    production_type: str | None = Field(
        description="The production type (`short_story`, `novella`, ...) of the job the "
        "call was a stage of; null for other calls."
    )


class UsageLogPage(BaseModel):
    items: list[UsageLog] = Field(description="Newest first.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


class UsageTotals(BaseModel):
    generations: int = Field(description="Calls that counted against the plan.")
    calls: int = Field(description="Every call recorded, counted or not.")
    prompt_tokens: int
    completion_tokens: int
    cost_usd: str = Field(description=USD_STRING)


class ModelUsage(UsageTotals):
    model: str
    provider: str


class OperationUsage(UsageTotals):
    operation: str = Field(description="`opening`, `continuation`, `ending`, ...")


class ProductionTypeUsage(UsageTotals):
    production_type: str = Field(description="`short_story`, `novelette`, `novella`, ...")


class UsageBreakdown(BaseModel):
    """The current period's recorded usage, per model and per operation."""

    period_start: dt.datetime
    period_end: dt.datetime
    by_model: list[ModelUsage] = Field(description="Most expensive first.")
    by_operation: list[OperationUsage] = Field(description="Most expensive first.")
    by_production_type: list[ProductionTypeUsage] = Field(
        description="Job stages' calls per production type, most expensive first; calls "
        "of no job are in no row (so these sum to at most the total)."
    )
    total: UsageTotals = Field(
        description="The sums over the period; equal to the sums of either list, and "
        "`cost_usd` to `cost_used_usd` of /v1/usage."
    )
