"""Any server speaking OpenAI's chat-completions API (Ollama, vLLM, llama.cpp's
server, LM Studio, LiteLLM and other gateways, OpenAI itself) through the
official `openai` SDK.

The time limits are Mistral's (see providers/mistral.py), each cut short by
the incoming gRPC call's deadline:
- connecting (and waiting for a free connection of the pool):
  OPENAI_CONNECT_TIMEOUT_SECONDS;
- the first streamed token (or a whole non-streamed answer):
  OPENAI_FIRST_TOKEN_TIMEOUT_SECONDS;
- silence between two streamed chunks: OPENAI_IDLE_TIMEOUT_SECONDS;
- the whole call, as a last bound: OPENAI_TIMEOUT_SECONDS.
The SDK's own retries are off, so a call never outlives them. Failures become
`UpstreamError` (gRPC UNAVAILABLE).

Streams ask for the usage (`stream_options.include_usage`): OpenAI and most
compatible servers then send it in a last chunk with no choices. A server that
ignores the option sends none, and the call's usage is counted locally and
flagged estimated, as for any provider that reports none.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
import openai
from fabula_common.context import remaining_time
from fabula_common.errors import UpstreamError
from openai import AsyncOpenAI

from fabula_generation.generations.domain import GenerationRequest
from fabula_generation.generations.prompts import build_prompt
from fabula_generation.generations.text import count_tokens
from fabula_generation.providers.base import (
    Completion,
    ProviderEvent,
    ReportedUsage,
    StructuredRequest,
    TextChunk,
)
from fabula_generation.providers.mistral import _max_tokens
from fabula_generation.safety.instructions import with_child_safety
from fabula_generation.settings import Settings

log = logging.getLogger(__name__)

# Sent when no key is configured: the SDK insists on one, and local servers
# (Ollama, llama.cpp) ignore the Authorization header.
NO_API_KEY = "not-needed"


def _text(content: Any) -> str:
    """NUL characters are dropped: Postgres cannot store them in text."""
    return content.replace("\x00", "") if isinstance(content, str) else ""


def _reported(usage: Any) -> ReportedUsage | None:
    if usage is None:
        return None
    prompt, completion = usage.prompt_tokens or 0, usage.completion_tokens or 0
    if not prompt and not completion:
        return None
    return ReportedUsage(prompt_tokens=prompt, completion_tokens=completion)


class OpenAICompatibleProvider:
    name = "openai"
    is_language_model = True
    # Our word-and-punctuation count only approximates any model's tokenizer.
    counts_tokens_exactly = False

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_seconds: float = 300.0,
        connect_timeout_seconds: float = 5.0,
        first_token_timeout_seconds: float = 30.0,
        idle_timeout_seconds: float = 30.0,
        max_connections: int = 1000,
        max_tokens: int = 800,
        temperature: float = 0.8,
    ) -> None:
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self.first_token_timeout_seconds = first_token_timeout_seconds
        self.idle_timeout_seconds = idle_timeout_seconds
        self.max_tokens = max_tokens
        self.temperature = temperature
        # Reads are bounded by the idle limit; the first token's wait is bounded here.
        timeout = httpx2.Timeout(
            connect=connect_timeout_seconds,
            pool=connect_timeout_seconds,
            write=idle_timeout_seconds,
            read=max(idle_timeout_seconds, first_token_timeout_seconds),
        )
        # Our own client, so shutdown closes its connections; one connection
        # per concurrent call (a stream keeps its own while it lasts).
        self._http = httpx2.AsyncClient(
            follow_redirects=True,
            limits=httpx2.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            timeout=timeout,
        )
        self._client = AsyncOpenAI(
            base_url=self.base_url,
            api_key=(api_key or "").strip() or NO_API_KEY,
            http_client=self._http,
            timeout=timeout,
            # No SDK retries: a retry after a 429 would eat the caller's deadline.
            max_retries=0,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAICompatibleProvider:
        assert settings.openai_base_url is not None
        return cls(
            base_url=settings.openai_base_url,
            model=settings.openai_model,
            api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else None,
            timeout_seconds=settings.openai_timeout_seconds,
            connect_timeout_seconds=settings.openai_connect_timeout_seconds,
            first_token_timeout_seconds=settings.openai_first_token_timeout_seconds,
            idle_timeout_seconds=settings.openai_idle_timeout_seconds,
            max_connections=settings.openai_max_connections,
            max_tokens=settings.openai_max_tokens,
            temperature=settings.openai_temperature,
        )

    def count_prompt_tokens(self, request: GenerationRequest) -> int:
        return count_tokens(build_prompt(request).text)

    async def complete(self, request: GenerationRequest) -> Completion:
        # A whole answer comes at once: it gets the first token's limit.
        budget = remaining_time(min(self.timeout_seconds, self.first_token_timeout_seconds))
        with self._upstream_errors(budget):
            async with asyncio.timeout(budget):
                response = await self._client.chat.completions.create(
                    model=self.model,
                    messages=with_child_safety(build_prompt(request).messages()),  # type: ignore[arg-type]
                    max_tokens=_max_tokens(request, self.max_tokens),
                    temperature=self.temperature,
                    timeout=budget,
                )
        return self._completion(response, "the model provider returned no text")

    async def complete_json(self, request: StructuredRequest) -> Completion:
        """Structured output: `response_format` of type json_schema (strict),
        which OpenAI, vLLM, Ollama and llama.cpp's server all accept; the text
        is the JSON document (`cut_off` when the token limit stopped it)."""
        budget = remaining_time(min(self.timeout_seconds, self.first_token_timeout_seconds))
        with self._upstream_errors(budget):
            async with asyncio.timeout(budget):
                response = await self._client.chat.completions.create(
                    model=self.model,
                    messages=with_child_safety(request.messages()),  # type: ignore[arg-type]
                    response_format={
                        "type": "json_schema",
                        "json_schema": {
                            "name": request.schema_name,
                            "schema": request.json_schema(),
                            "strict": True,
                        },
                    },
                    max_tokens=max(self.max_tokens, request.max_tokens),
                    temperature=self.temperature,
                    timeout=budget,
                )
        return self._completion(response, "the model provider returned no answer")

    @staticmethod
    def _completion(response: Any, when_empty: str) -> Completion:
        if not response.choices or response.choices[0].message is None:
            raise UpstreamError(when_empty)
        choice = response.choices[0]
        return Completion(
            _text(choice.message.content),
            _reported(response.usage),
            cut_off=choice.finish_reason == "length",
        )

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[ProviderEvent, None]:
        loop = asyncio.get_running_loop()
        # The last bound on the whole call: ours, or the incoming call's deadline.
        call_ends = loop.time() + remaining_time(self.timeout_seconds)
        limit = min(self.first_token_timeout_seconds, call_ends - loop.time())
        with self._upstream_errors(limit):
            async with asyncio.timeout(limit):
                chunks = await self._client.chat.completions.create(
                    model=self.model,
                    messages=with_child_safety(build_prompt(request).messages()),  # type: ignore[arg-type]
                    max_tokens=_max_tokens(request, self.max_tokens),
                    temperature=self.temperature,
                    stream=True,
                    stream_options={"include_usage": True},
                    timeout=limit,
                )
        first_token_by = loop.time() + limit
        usage: ReportedUsage | None = None
        produced = False
        try:
            while True:
                # Until the first token: its limit from the request's start;
                # then the idle limit from the previous chunk. Neither spans
                # the time our caller takes between chunks (never across a yield).
                if produced:
                    limit = min(self.idle_timeout_seconds, call_ends - loop.time())
                else:
                    limit = min(first_token_by, call_ends) - loop.time()
                with self._upstream_errors(limit):
                    async with asyncio.timeout(max(limit, 0)):
                        try:
                            chunk = await anext(chunks)
                        except StopAsyncIteration:
                            break
                # The usage comes in a last chunk of its own (no choices).
                usage = _reported(chunk.usage) or usage
                for choice in chunk.choices:
                    text = _text(choice.delta.content if choice.delta else None)
                    if text:
                        produced = True
                        yield TextChunk(text)
        finally:
            # Closing the response stops the server generating for a caller who left.
            await chunks.close()
        if usage is not None:
            yield usage

    @contextmanager
    def _upstream_errors(self, budget: float) -> Iterator[None]:
        """Provider and network failures as the UpstreamError callers handle."""
        try:
            yield
        except openai.APIStatusError as exc:
            status = exc.status_code
            log.warning("%s answered HTTP %s: %s", self.base_url, status, str(exc.body)[:500])
            if status == 429:
                retry_after = exc.response.headers.get("retry-after")
                hint = (
                    f" (retry after {retry_after}s)"
                    if retry_after and retry_after.isdigit()
                    else ""
                )
                raise UpstreamError(
                    f"the model provider is rate-limiting requests; try again shortly{hint}",
                    reason=UpstreamError.RATE_LIMITED,
                ) from exc
            if status >= 500:
                raise UpstreamError(f"the model provider failed (HTTP {status})") from exc
            # Our configuration (key, model name, URL) or our request: worth an operator's look.
            log.error("%s rejected a request with HTTP %s", self.base_url, status)
            raise UpstreamError(f"the model provider rejected the request (HTTP {status})") from exc
        except (TimeoutError, openai.APITimeoutError, httpx2.TimeoutException) as exc:
            raise UpstreamError(f"the model provider did not answer within {budget:.1f}s") from exc
        except (openai.APIConnectionError, httpx2.HTTPError) as exc:
            log.warning("%s unreachable: %r", self.base_url, exc)
            raise UpstreamError("the model provider could not be reached") from exc
        except openai.APIError as exc:
            # An error event inside a stream: the server failed while writing.
            log.warning("%s failed mid-answer: %s", self.base_url, exc)
            raise UpstreamError("the model provider failed while writing") from exc
        except ValueError as exc:  # a chunk that is not JSON
            log.warning("%s sent a chunk that could not be read: %r", self.base_url, exc)
            raise UpstreamError("the model provider sent an answer that could not be read") from exc

    async def aclose(self) -> None:
        await self._http.aclose()
