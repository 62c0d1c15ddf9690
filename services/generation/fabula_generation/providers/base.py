"""The interface every model provider implements.

A provider turns a GenerationRequest into text. Its raw output may start with
a "Title: ..." line when a title was asked for; the service separates it.
Providers report failures of the outside world as `UpstreamError` and nothing
else, and bound every call in time.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, Protocol

from fabula_generation.generations.domain import GenerationRequest


@dataclass(frozen=True)
class TextChunk:
    text: str


@dataclass(frozen=True)
class ReportedUsage:
    """Token counts the provider itself reported for the whole call."""

    prompt_tokens: int
    completion_tokens: int


ProviderEvent = TextChunk | ReportedUsage


@dataclass(frozen=True)
class Completion:
    text: str
    usage: ReportedUsage | None
    # The answer stopped at the token limit (a JSON document is then incomplete).
    cut_off: bool = False


def prompt_text(messages: list[dict[str, Any]]) -> str:
    """The text of chat messages, for counting tokens: string contents, and
    the text chunks of a list content (an image chunk carries no text)."""
    parts: list[str] = []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            parts.append(content)
        else:
            parts.extend(chunk["text"] for chunk in content if chunk.get("type") == "text")
    return "\n".join(parts)


class StructuredRequest(Protocol):
    """A call whose answer is one JSON document following a schema (structured
    output). A language model is sent `messages()` and held to the schema; a
    provider that is not one answers `offline_answer()`, composed without a model."""

    # Names the schema for the provider (Mistral's json_schema.name).
    schema_name: str
    # Room the answer needs, in tokens: a provider never allows it fewer.
    max_tokens: int

    def json_schema(self) -> dict[str, Any]: ...

    def messages(self) -> list[dict[str, Any]]:
        """Chat messages; a content is a string or a list of chunks (text,
        and an image as `{"type": "image_url", "image_url": {"url": <data URL>}}`,
        the form both Mistral and OpenAI-compatible servers read)."""
        ...

    def offline_answer(self) -> Any:
        """The document a built-in generator answers with (JSON-serialisable)."""
        ...


class GenerationProvider(Protocol):
    name: str
    model: str
    # False for the built-in offline provider, which is not a language model.
    is_language_model: bool
    # True when count_prompt_tokens and text.count_tokens are the provider's own
    # measure, so usage counted locally (after a cancellation) is exact.
    counts_tokens_exactly: bool

    def stream(self, request: GenerationRequest) -> AsyncGenerator[ProviderEvent, None]:
        """Text chunks as they are produced, then the usage if the provider reports one."""
        ...

    async def complete(self, request: GenerationRequest) -> Completion: ...

    async def complete_json(self, request: StructuredRequest) -> Completion:
        """One non-streamed call answering a JSON document (its text, unparsed:
        the caller validates it) that follows request.json_schema()."""
        ...

    def count_prompt_tokens(self, request: GenerationRequest) -> int:
        """The prompt's size in tokens, counted locally."""
        ...

    async def aclose(self) -> None: ...
