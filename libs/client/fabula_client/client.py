"""`Fabula` (sync) and `AsyncFabula`: the same resources and methods; only
how a request is sent and waited for differs (see _core for why)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
from httpx_sse import EventSource

from fabula_client._core import (
    DEFAULT_BASE_URL,
    Call,
    Core,
    Credentials,
    Exchange,
    Flow,
    Read,
    RetryPolicy,
    Sleep,
    StreamReader,
)
from fabula_client.errors import APIConnectionError
from fabula_client.models import Tokens
from fabula_client.resources import (
    Account,
    Admin,
    ApiKeys,
    Auth,
    Billing,
    Branches,
    Conversations,
    Drawings,
    Identities,
    Jobs,
    Lore,
    Me,
    Narratives,
    Photos,
    PictureStories,
    Projects,
    Segments,
    Sharing,
    Stories,
    Suggestions,
    Tutorials,
    UsageResource,
)

if TYPE_CHECKING:
    from fabula_client import _async_types


class BaseClient:
    """Configuration and resources shared by both clients.

    base_url: the API (default FABULA_API_URL, else http://127.0.0.1:8000).
    api_key: an API key (`fab_...`); or tokens: a token pair from an earlier
    login, refreshed before it expires, each new pair given to on_tokens.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        tokens: Tokens | None = None,
        on_tokens: Callable[[Tokens], None] | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 60.0,
        stream_timeout: float = 120.0,
    ) -> None:
        base_url = base_url or os.environ.get("FABULA_API_URL") or DEFAULT_BASE_URL
        api_key = api_key or os.environ.get("FABULA_API_KEY") or None
        self._core = Core(
            base_url, Credentials(api_key, tokens, on_tokens), retry or RetryPolicy(),
            timeout, stream_timeout,
        )
        self.auth = Auth(self)
        self.me = Me(self)
        self.api_keys = ApiKeys(self)
        self.stories = Stories(self)
        self.projects = Projects(self)
        self.jobs = Jobs(self)
        self.conversations = Conversations(self)
        self.usage = UsageResource(self)
        self.account = Account(self)
        self.identities = Identities(self)
        self.segments = Segments(self)
        self.branches = Branches(self)
        self.lore = Lore(self)
        self.sharing = Sharing(self)
        self.suggestions = Suggestions(self)
        self.narratives = Narratives(self)
        self.photos = Photos(self)
        self.tutorials = Tutorials(self)
        self.drawings = Drawings(self)
        self.picture_stories = PictureStories(self)
        self.billing = Billing(self)
        self.admin = Admin(self)

    @property
    def base_url(self) -> str:
        return self._core.base_url

    @property
    def tokens(self) -> Tokens | None:
        """The current token pair (after login, register or a refresh)."""
        return self._core.credentials.tokens

    def _request(self, call: Call) -> Any:
        raise NotImplementedError

    def _stream(self, call: Call) -> Any:
        raise NotImplementedError

    def _flow(self, flow: Flow) -> Any:
        raise NotImplementedError


class Fabula(BaseClient):
    """The synchronous client: `with Fabula() as client: client.stories.list()`."""

    def __init__(self, base_url: str | None = None, **options: Any) -> None:
        super().__init__(base_url, **options)
        self._http = httpx.Client()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Fabula:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self, exchange: Exchange) -> httpx.Response:
        # The exchange is sent a response, or thrown the transport's error.
        advance: Callable[[Any], Any] = exchange.send
        reply: Any = None
        try:
            while True:
                try:
                    action = advance(reply)
                except StopIteration as done:
                    return done.value
                advance, reply = exchange.send, None
                if isinstance(action, Sleep):
                    time.sleep(action.seconds)
                elif isinstance(action, Read):
                    action.response.read()
                    action.response.close()
                else:
                    try:
                        reply = self._http.send(action.request, stream=action.stream)
                    except httpx.TransportError as exc:
                        advance, reply = exchange.throw, exc  # the exchange decides
        except httpx.TransportError as exc:
            raise APIConnectionError(f"{type(exc).__name__}: {exc}") from exc

    def _request(self, call: Call) -> Any:
        return self._core.answer(call, self._run(self._core.exchange(call)))

    def _flow(self, flow: Flow) -> Any:
        reply = None
        while True:
            try:
                step = flow.send(reply)
            except StopIteration as done:
                return done.value
            if isinstance(step, Sleep):
                time.sleep(step.seconds)
                reply = None
            else:
                reply = self._request(step)

    def _stream(self, call: Call) -> Iterator[Any]:
        reader = StreamReader(call)
        while True:
            response = self._run(self._core.exchange(reader.next_call()))
            failure = None
            try:
                for sse in EventSource(response).iter_sse():
                    item = reader.take(sse)
                    if item is not None:
                        yield item
                    if reader.finished:
                        return
            except httpx.TransportError as exc:
                failure = exc
            finally:
                response.close()
            if not reader.resume_after(failure):
                return


class AsyncFabula(BaseClient):
    """The asyncio client: `await client.stories.get(id)`, `async for event in
    client.jobs.watch(id)`."""

    if TYPE_CHECKING:
        # The resources are BaseClient's; here each answer is awaited (a stub
        # generated from resources.py, kept in step by libs/client/tests).
        auth: _async_types.AsyncAuth  # type: ignore[assignment]
        me: _async_types.AsyncMe  # type: ignore[assignment]
        api_keys: _async_types.AsyncApiKeys  # type: ignore[assignment]
        stories: _async_types.AsyncStories  # type: ignore[assignment]
        projects: _async_types.AsyncProjects  # type: ignore[assignment]
        jobs: _async_types.AsyncJobs  # type: ignore[assignment]
        conversations: _async_types.AsyncConversations  # type: ignore[assignment]
        usage: _async_types.AsyncUsageResource  # type: ignore[assignment]
        account: _async_types.AsyncAccount  # type: ignore[assignment]
        identities: _async_types.AsyncIdentities  # type: ignore[assignment]
        segments: _async_types.AsyncSegments  # type: ignore[assignment]
        branches: _async_types.AsyncBranches  # type: ignore[assignment]
        lore: _async_types.AsyncLore  # type: ignore[assignment]
        sharing: _async_types.AsyncSharing  # type: ignore[assignment]
        suggestions: _async_types.AsyncSuggestions  # type: ignore[assignment]
        narratives: _async_types.AsyncNarratives  # type: ignore[assignment]
        photos: _async_types.AsyncPhotos  # type: ignore[assignment]
        tutorials: _async_types.AsyncTutorials  # type: ignore[assignment]
        drawings: _async_types.AsyncDrawings  # type: ignore[assignment]
        picture_stories: _async_types.AsyncPictureStories  # type: ignore[assignment]
        billing: _async_types.AsyncBilling  # type: ignore[assignment]
        admin: _async_types.AsyncAdmin  # type: ignore[assignment]

    def __init__(self, base_url: str | None = None, **options: Any) -> None:
        super().__init__(base_url, **options)
        self._http = httpx.AsyncClient()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncFabula:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _run(self, exchange: Exchange) -> httpx.Response:
        # The exchange is sent a response, or thrown the transport's error.
        advance: Callable[[Any], Any] = exchange.send
        reply: Any = None
        try:
            while True:
                try:
                    action = advance(reply)
                except StopIteration as done:
                    return done.value
                advance, reply = exchange.send, None
                if isinstance(action, Sleep):
                    await asyncio.sleep(action.seconds)
                elif isinstance(action, Read):
                    await action.response.aread()
                    await action.response.aclose()
                else:
                    try:
                        reply = await self._http.send(action.request, stream=action.stream)
                    except httpx.TransportError as exc:
                        advance, reply = exchange.throw, exc  # the exchange decides
        except httpx.TransportError as exc:
            raise APIConnectionError(f"{type(exc).__name__}: {exc}") from exc

    async def _request(self, call: Call) -> Any:
        return self._core.answer(call, await self._run(self._core.exchange(call)))

    async def _flow(self, flow: Flow) -> Any:
        reply = None
        while True:
            try:
                step = flow.send(reply)
            except StopIteration as done:
                return done.value
            if isinstance(step, Sleep):
                await asyncio.sleep(step.seconds)
                reply = None
            else:
                reply = await self._request(step)

    async def _stream(self, call: Call) -> AsyncIterator[Any]:
        reader = StreamReader(call)
        while True:
            response = await self._run(self._core.exchange(reader.next_call()))
            failure = None
            try:
                async for sse in EventSource(response).aiter_sse():
                    item = reader.take(sse)
                    if item is not None:
                        yield item
                    if reader.finished:
                        return
            except httpx.TransportError as exc:
                failure = exc
            finally:
                await response.aclose()
            if not reader.resume_after(failure):
                return
