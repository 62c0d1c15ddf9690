"""Mistral's chat-completions API through the official `mistralai` SDK.

Every call is bounded by MISTRAL_TIMEOUT_SECONDS, or less when the incoming
gRPC call must be answered sooner; the SDK's own retries are off, so a call
never outlives that budget. Failures become `UpstreamError` (gRPC UNAVAILABLE).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
from fabula_common.context import remaining_time
from fabula_common.errors import UpstreamError
from mistralai.client import Mistral
from mistralai.client.errors import MistralError, NoResponseError

from fabula_generation.generations.domain import GenerationRequest
from fabula_generation.generations.prompts import build_prompt
from fabula_generation.generations.text import count_tokens
from fabula_generation.providers.base import Completion, ProviderEvent, ReportedUsage, TextChunk
from fabula_generation.settings import Settings

log = logging.getLogger(__name__)


def _content_text(content: Any) -> str:
    """Message content is a string or a list of chunks (text among others).
    NUL characters are dropped: Postgres cannot store them in text."""
    return _raw_text(content).replace("\x00", "")


def _raw_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            text for chunk in content if isinstance(text := getattr(chunk, "text", None), str)
        )
    return ""


def _reported(usage: Any) -> ReportedUsage | None:
    if usage is None:
        return None
    prompt, completion = usage.prompt_tokens or 0, usage.completion_tokens or 0
    if not prompt and not completion:
        return None
    return ReportedUsage(prompt_tokens=prompt, completion_tokens=completion)


class MistralProvider:
    name = "mistral"
    is_language_model = True
    # Our word-and-punctuation count only approximates Mistral's tokenizer.
    counts_tokens_exactly = False

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        server_url: str | None = None,
        timeout_seconds: float = 60.0,
        max_tokens: int = 800,
        temperature: float = 0.8,
    ) -> None:
        self.model = model
        self.timeout_seconds = timeout_seconds
        self.max_tokens = max_tokens
        self.temperature = temperature
        # Our own client, so shutdown can close its connections.
        self._http = httpx2.AsyncClient(follow_redirects=True, timeout=timeout_seconds)
        self._client = Mistral(
            api_key=api_key,
            server_url=server_url.rstrip("/") if server_url else None,
            async_client=self._http,
            timeout_ms=int(timeout_seconds * 1000),
            # No SDK retries: a retry after a 429 would eat the caller's deadline.
            retry_config=None,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> MistralProvider:
        assert settings.mistral_api_key is not None
        return cls(
            api_key=settings.mistral_api_key.get_secret_value().strip(),
            model=settings.mistral_model,
            server_url=settings.mistral_server_url,
            timeout_seconds=settings.mistral_timeout_seconds,
            max_tokens=settings.mistral_max_tokens,
            temperature=settings.mistral_temperature,
        )

    def count_prompt_tokens(self, request: GenerationRequest) -> int:
        return count_tokens(build_prompt(request).text)

    def _budget(self) -> float:
        return remaining_time(self.timeout_seconds)

    async def complete(self, request: GenerationRequest) -> Completion:
        budget = self._budget()
        with self._upstream_errors(budget):
            async with asyncio.timeout(budget):
                response = await self._client.chat.complete_async(
                    model=self.model,
                    messages=build_prompt(request).messages(),
                    max_tokens=self.max_tokens,
                    temperature=self.temperature,
                    timeout_ms=max(1, int(budget * 1000)),
                )
        if not response.choices or response.choices[0].message is None:
            raise UpstreamError("the model provider returned no text")
        choice = response.choices[0]
        if choice.finish_reason == "error":
            raise UpstreamError("the model provider failed while writing")
        return Completion(_content_text(choice.message.content), _reported(response.usage))

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[ProviderEvent, None]:
        budget = self._budget()
        deadline = asyncio.get_running_loop().time() + budget
        with self._upstream_errors(budget):
            async with asyncio.timeout_at(deadline):
                events = await self._client.chat.stream_async(
                    model=self.model,
                    messages=build_prompt(request).messages(),
                    max_tokens=self.max_tokens,
                    temperature=self.temperature,
                    timeout_ms=max(1, int(budget * 1000)),
                )
        usage: ReportedUsage | None = None
        try:
            while True:
                # The deadline covers each wait for the provider, never the time
                # our caller takes between chunks (a timeout must not span a yield).
                with self._upstream_errors(budget):
                    async with asyncio.timeout_at(deadline):
                        try:
                            event = await anext(events)
                        except StopAsyncIteration:
                            break
                chunk = event.data
                usage = _reported(chunk.usage) or usage
                for choice in chunk.choices:
                    text = _content_text(choice.delta.content)
                    if text:
                        yield TextChunk(text)
                    if choice.finish_reason == "error":
                        raise UpstreamError("the model provider failed while writing")
        finally:
            # Closing the response stops the provider generating for a caller who left.
            await events.close()
        if usage is not None:
            yield usage

    @contextmanager
    def _upstream_errors(self, budget: float) -> Iterator[None]:
        """Provider and network failures as the UpstreamError callers handle."""
        try:
            yield
        except MistralError as exc:
            log.warning("mistral answered HTTP %s: %s", exc.status_code, exc.body[:500])
            if exc.status_code == 429:
                retry_after = exc.headers.get("retry-after")
                hint = (
                    f" (retry after {retry_after}s)"
                    if retry_after and retry_after.isdigit()
                    else ""
                )
                raise UpstreamError(
                    f"the model provider is rate-limiting requests; try again shortly{hint}",
                    reason=UpstreamError.RATE_LIMITED,
                ) from exc
            if exc.status_code >= 500:
                raise UpstreamError(f"the model provider failed (HTTP {exc.status_code})") from exc
            if exc.status_code >= 400:
                # Our configuration (key, model name) or our request: worth an operator's look.
                log.error("mistral rejected a request with HTTP %s", exc.status_code)
                raise UpstreamError(
                    f"the model provider rejected the request (HTTP {exc.status_code})"
                ) from exc
            raise UpstreamError("the model provider sent an answer that could not be read") from exc
        except (TimeoutError, httpx2.TimeoutException) as exc:
            raise UpstreamError(f"the model provider did not answer within {budget:.1f}s") from exc
        except (httpx2.HTTPError, NoResponseError) as exc:
            log.warning("mistral unreachable: %r", exc)
            raise UpstreamError("the model provider could not be reached") from exc

    async def aclose(self) -> None:
        await self._http.aclose()
