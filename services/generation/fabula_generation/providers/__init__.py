"""Model providers, and the choice of one by configuration."""

from __future__ import annotations

from fabula_generation.providers.base import (
    Completion,
    GenerationProvider,
    ProviderEvent,
    ReportedUsage,
    StructuredRequest,
    TextChunk,
)
from fabula_generation.providers.mistral import MistralProvider
from fabula_generation.providers.offline import OfflineProvider
from fabula_generation.providers.openai_compatible import OpenAICompatibleProvider
from fabula_generation.settings import ProviderChoice, Settings

__all__ = [
    "Completion",
    "GenerationProvider",
    "MistralProvider",
    "OfflineProvider",
    "OpenAICompatibleProvider",
    "ProviderEvent",
    "ReportedUsage",
    "StructuredRequest",
    "TextChunk",
    "create_provider",
]


def create_provider(settings: Settings) -> GenerationProvider:
    """The provider GENERATION_PROVIDER chooses (`auto`: Mistral when a key is
    set, else an OpenAI-compatible server when its URL is)."""
    if settings.resolved_provider is ProviderChoice.mistral:
        return MistralProvider.from_settings(settings)
    if settings.resolved_provider is ProviderChoice.openai:
        return OpenAICompatibleProvider.from_settings(settings)
    return OfflineProvider(token_delay_seconds=settings.offline_token_delay_ms / 1000)
