"""Mistral's chat-completions API through the official `mistralai` SDK.

Time limits, each cut short by the incoming gRPC call's deadline:
- connecting (and waiting for a free connection of the pool):
  MISTRAL_CONNECT_TIMEOUT_SECONDS;
- the first streamed token (or a whole non-streamed answer):
  MISTRAL_FIRST_TOKEN_TIMEOUT_SECONDS;
- silence between two streamed chunks: MISTRAL_IDLE_TIMEOUT_SECONDS, so a long
  stream lives as long as it keeps producing;
- the whole call, as a last bound: MISTRAL_TIMEOUT_SECONDS.
The SDK's own retries are off, so a call never outlives them. Failures become
`UpstreamError` (gRPC UNAVAILABLE).

The SDK makes the request (auth, URL, error answers); the streamed chunks are
read here from its response, each validated with the SDK's own
`CompletionChunk` model. The SDK's decoder builds a new pydantic model class
for every chunk (about 1.4 ms of CPU per token); a class validated once costs
a few microseconds. Its request building did the same for every argument of
every request (seven classes, about 5 ms of CPU before the request could
leave): `_reuse_sdk_wrapper_models` makes it build each once, and
`_cache_sdk_type_hints` evaluates each request class's annotations once. Its
request hooks run on the event loop rather than in a worker thread
(`_run_sdk_hooks_inline`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncGenerator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
from fabula_common.context import remaining_time
from fabula_common.errors import UpstreamError
from mistralai.client import Mistral
from mistralai.client import basesdk as sdk_basesdk
from mistralai.client.errors import MistralError, NoResponseError
from mistralai.client.models import (
    AssistantMessage,
    CompletionChunk,
    SystemMessage,
    UserMessage,
)
from mistralai.client.utils import forms as sdk_forms
from mistralai.client.utils import queryparams as sdk_queryparams
from mistralai.client.utils import serializers as sdk_serializers
from mistralai.client.utils import url as sdk_url
from pydantic import ValidationError

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
from fabula_generation.safety.instructions import with_child_safety
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


_SENTINEL = "[DONE]"


def _reuse_sdk_wrapper_models() -> None:
    """The SDK (un)marshals each request argument through a one-field pydantic
    model it creates for the call (`create_model("Unmarshaller", body=(type,
    ...))`): a class built, its schema and validator generated, then thrown
    away. The class depends only on its name and the field's type, so each
    is built once and reused. Idempotent; a type that cannot be a dictionary
    key is built as before."""
    create_model = sdk_serializers.create_model
    if getattr(create_model, "reuses_models", False):
        return
    built: dict[tuple[str, Any], Any] = {}

    def create_once(name: str, /, *, body: Any, **options: Any) -> Any:
        try:
            return built[name, body]
        except KeyError:
            model = built[name, body] = create_model(name, body=body, **options)
            return model
        except TypeError:  # an unhashable type
            return create_model(name, body=body, **options)

    create_once.reuses_models = True  # type: ignore[attr-defined]
    sdk_serializers.create_model = create_once


def _cache_sdk_type_hints() -> None:
    """The SDK looks up the request class's type hints for its query, path
    and form parameters on every request (`typing.get_type_hints`, which
    evaluates each string annotation again: about 1 ms of CPU per chat
    request). A class's hints do not change, so each is evaluated once."""
    for module in (sdk_queryparams, sdk_url, sdk_forms):
        get_type_hints = module.get_type_hints
        if not getattr(get_type_hints, "cached_per_class", False):
            cached = functools.cache(get_type_hints)
            cached.cached_per_class = True  # type: ignore[attr-defined]
            module.get_type_hints = cached


async def _run_inline(func: Any, *args: Any) -> Any:
    return func(*args)


def _run_sdk_hooks_inline() -> None:
    """The SDK hands its request hooks (user agent, traceparent, tracing) to
    a worker thread before each request and again after its answer: two
    thread hops per call, about 0.3 ms each on an idle machine and more on a
    busy one, for hooks that take microseconds. None of them waits on
    anything with an API key, which the provider always has (the one that
    may read a service-account token file returns at once when a key is
    set), so they run on the event loop."""
    if getattr(sdk_basesdk, "run_sync_in_thread", None) is not None:
        sdk_basesdk.run_sync_in_thread = _run_inline


_reuse_sdk_wrapper_models()
_cache_sdk_type_hints()
_run_sdk_hooks_inline()


_SDK_MESSAGES = {"system": SystemMessage, "user": UserMessage, "assistant": AssistantMessage}


def _chat_messages(messages: list[dict[str, Any]]) -> list[Any]:
    """What is sent for `messages`: led by the child-safe instructions when the
    request is child-safe, and text messages as the SDK's own message models
    (see _sdk_messages)."""
    return _sdk_messages(with_child_safety(messages))


def _sdk_messages(messages: list[dict[str, Any]]) -> list[Any]:
    """Text messages as the SDK's own message models: the SDK takes those as
    they are, while it walks every plain dictionary through each member of
    its message union before validating it (about 1 ms of CPU for a story's
    prompt). The JSON sent is the same. Other messages (an image's chunks)
    stay dictionaries."""
    return [
        _SDK_MESSAGES[m["role"]](content=m["content"])
        if m.get("role") in _SDK_MESSAGES and isinstance(m.get("content"), str) and len(m) == 2
        else m
        for m in messages
    ]


async def _completion_chunks(response: httpx2.Response) -> AsyncGenerator[CompletionChunk, None]:
    """The chat completion chunks of a server-sent event stream, until [DONE].
    Only `data` fields matter to this API: events are the blank-line-separated
    groups of them (multi-line data joined with newlines, as the SSE spec says).
    The body is read to its end even past [DONE]: a response closed unread
    closes its connection, and the next call would pay a new one (TCP and TLS)
    before its request could leave."""
    data: list[str] = []
    done = False
    async for line in response.aiter_lines():
        if done:
            continue
        if line:
            field, _, value = line.partition(":")
            if field == "data":
                data.append(value[1:] if value.startswith(" ") else value)
            continue
        if not data:
            continue
        payload = "\n".join(data)
        data.clear()
        if payload == _SENTINEL:
            done = True
            continue
        yield CompletionChunk.model_validate_json(payload)
    if not done and data and (payload := "\n".join(data)) != _SENTINEL:
        yield CompletionChunk.model_validate_json(payload)


def _max_tokens(request: GenerationRequest, default: int) -> int:
    """A composed prompt (a job's stage) says how long its answer may be."""
    return request.prompt.max_tokens if request.prompt is not None else default


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
        timeout_seconds: float = 300.0,
        connect_timeout_seconds: float = 5.0,
        first_token_timeout_seconds: float = 30.0,
        idle_timeout_seconds: float = 30.0,
        max_connections: int = 1000,
        max_tokens: int = 800,
        temperature: float = 0.8,
        moderation_model: str = "mistral-moderation-latest",
    ) -> None:
        self.model = model
        self.moderation_model = moderation_model
        self.timeout_seconds = timeout_seconds
        self.first_token_timeout_seconds = first_token_timeout_seconds
        self.idle_timeout_seconds = idle_timeout_seconds
        self.max_tokens = max_tokens
        self.temperature = temperature
        # Our own client, so shutdown can close its connections. Its pool
        # holds one connection per concurrent call (a stream keeps its own for
        # its whole length); waiting for one counts as connecting. Reads are
        # bounded by the idle limit: the first token's wait is bounded here.
        self._http = httpx2.AsyncClient(
            follow_redirects=True,
            limits=httpx2.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            timeout=httpx2.Timeout(
                connect=connect_timeout_seconds,
                pool=connect_timeout_seconds,
                write=idle_timeout_seconds,
                read=max(idle_timeout_seconds, first_token_timeout_seconds),
            ),
        )
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
            connect_timeout_seconds=settings.mistral_connect_timeout_seconds,
            first_token_timeout_seconds=settings.mistral_first_token_timeout_seconds,
            idle_timeout_seconds=settings.mistral_idle_timeout_seconds,
            max_connections=settings.mistral_max_connections,
            max_tokens=settings.mistral_max_tokens,
            temperature=settings.mistral_temperature,
            moderation_model=settings.mistral_moderation_model,
        )

    def count_prompt_tokens(self, request: GenerationRequest) -> int:
        return count_tokens(build_prompt(request).text)

    async def complete(self, request: GenerationRequest) -> Completion:
        # A whole answer comes at once: it gets the first token's limit.
        budget = remaining_time(min(self.timeout_seconds, self.first_token_timeout_seconds))
        with self._upstream_errors(budget):
            async with asyncio.timeout(budget):
                response = await self._client.chat.complete_async(
                    model=self.model,
                    messages=_chat_messages(build_prompt(request).messages()),
                    max_tokens=_max_tokens(request, self.max_tokens),
                    temperature=self.temperature,
                    timeout_ms=max(1, int(budget * 1000)),
                )
        if not response.choices or response.choices[0].message is None:
            raise UpstreamError("the model provider returned no text")
        choice = response.choices[0]
        if choice.finish_reason == "error":
            raise UpstreamError("the model provider failed while writing")
        return Completion(_content_text(choice.message.content), _reported(response.usage))

    async def complete_json(self, request: StructuredRequest) -> Completion:
        """Structured output: Mistral's `response_format` of type json_schema
        (strict) holds the answer to the request's schema; its text is the
        JSON document (`cut_off` when the token limit stopped it midway)."""
        budget = remaining_time(min(self.timeout_seconds, self.first_token_timeout_seconds))
        with self._upstream_errors(budget):
            async with asyncio.timeout(budget):
                response = await self._client.chat.complete_async(
                    model=self.model,
                    messages=_chat_messages(request.messages()),
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
                    timeout_ms=max(1, int(budget * 1000)),
                )
        if not response.choices or response.choices[0].message is None:
            raise UpstreamError("the model provider returned no answer")
        choice = response.choices[0]
        if choice.finish_reason == "error":
            raise UpstreamError("the model provider failed while writing")
        return Completion(
            _content_text(choice.message.content),
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
                events = await self._client.chat.stream_async(
                    model=self.model,
                    messages=_chat_messages(build_prompt(request).messages()),
                    max_tokens=_max_tokens(request, self.max_tokens),
                    temperature=self.temperature,
                    timeout_ms=max(1, int(limit * 1000)),
                )
        # The SDK's own decoder is left unused (see the module's docstring);
        # its response is read here and closed through it.
        chunks = _completion_chunks(events.response)
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
                usage = _reported(chunk.usage) or usage
                for choice in chunk.choices:
                    text = _content_text(choice.delta.content)
                    if text:
                        produced = True
                        yield TextChunk(text)
                    if choice.finish_reason == "error":
                        raise UpstreamError("the model provider failed while writing")
        finally:
            # Closing the response stops the provider generating for a caller who left.
            await chunks.aclose()
            await events.close()
        if usage is not None:
            yield usage

    async def moderate(self, texts: list[str]) -> list[dict[str, bool]]:
        """Mistral's moderation endpoint (`classifiers.moderate`): for each
        text, its categories and whether each is flagged."""
        budget = remaining_time(min(self.timeout_seconds, self.first_token_timeout_seconds))
        with self._upstream_errors(budget):
            async with asyncio.timeout(budget):
                response = await self._client.classifiers.moderate_async(
                    model=self.moderation_model,
                    inputs=texts,
                    timeout_ms=max(1, int(budget * 1000)),
                )
        if len(response.results) != len(texts):
            raise UpstreamError("the moderation answered for a different number of texts")
        return [dict(result.categories or {}) for result in response.results]

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
        except (ValidationError, ValueError) as exc:
            log.warning("mistral sent a chunk that could not be read: %r", exc)
            raise UpstreamError("the model provider sent an answer that could not be read") from exc
        except (TimeoutError, httpx2.TimeoutException) as exc:
            raise UpstreamError(f"the model provider did not answer within {budget:.1f}s") from exc
        except (httpx2.HTTPError, NoResponseError) as exc:
            log.warning("mistral unreachable: %r", exc)
            raise UpstreamError("the model provider could not be reached") from exc

    async def aclose(self) -> None:
        await self._http.aclose()
