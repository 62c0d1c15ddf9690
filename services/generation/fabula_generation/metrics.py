"""Prometheus metrics of model calls."""

from __future__ import annotations

from prometheus_client import Counter

GENERATIONS = Counter(
    "fabula_generations_total",
    "Model calls recorded, by provider, model, purpose and outcome.",
    ["provider", "model", "purpose", "outcome"],
)
GENERATION_TOKENS = Counter(
    "fabula_generation_tokens_total",
    "Tokens billed for model calls, by provider, model and direction (prompt, completion).",
    ["provider", "model", "direction"],
)
GENERATION_COST = Counter(
    "fabula_generation_cost_usd_total",
    "US dollars billed for model calls (from the configured price table).",
    ["provider", "model"],
)
GENERATIONS_ABANDONED = Counter(
    "fabula_generations_abandoned_total",
    "Generations whose process died mid-call, settled as failed by the sweeper.",
    ["provider", "model"],
)
