"""The Mistral provider through the real SDK, against the fake Mistral API."""

from __future__ import annotations

import asyncio
import time

import pytest
from fabula_common.context import set_deadline_in
from fabula_common.errors import UpstreamError
from fabula_generation.generations.domain import (
    GenerationRequest,
    Outcome,
    Purpose,
    StoryInputs,
    Subject,
)
from fabula_generation.generations.prompts import TITLE_INSTRUCTION
from fabula_generation.generations.service import (
    GenerationCall,
    complete_generation,
    stream_generation,
)
from fabula_generation.generations.text import count_tokens
from fabula_generation.providers import MistralProvider, ReportedUsage, TextChunk

API_KEY = "sk-test-key"
FAKE_REPLY_START = "Rain drummed on the harbour roofs"


def request(
    direction: str = "", *, want_title: bool = False, kind=Purpose.story_continuation
) -> GenerationRequest:
    return GenerationRequest(
        user_id="user-1",
        purpose=kind,
        subject=Subject("story", "story-1"),
        story=StoryInputs(
            genre="mystery",
            title="The Harbour",
            characters=("Mara, a lighthouse keeper", "Tom"),
            opening_line="The fog came in at noon.",
            previous_segments=("Mara climbed the tower.", "The light went out."),
        ),
        direction=direction,
        want_title=want_title,
    )


@pytest.fixture
async def provider(fake_mistral):
    provider = MistralProvider(
        api_key=API_KEY,
        model="mistral-small-latest",
        server_url=fake_mistral.url,
        timeout_seconds=5,
    )
    yield provider
    await provider.aclose()


async def test_a_completion_carries_the_text_and_the_reported_usage(provider, fake_mistral):
    completion = await provider.complete(request("Tom finds the keys"))

    assert completion.text.startswith(FAKE_REPLY_START)
    assert completion.usage is not None and completion.usage.completion_tokens == len(
        completion.text.split()
    )

    (sent,) = fake_mistral.requests
    assert sent["model"] == "mistral-small-latest" and not sent.get("stream")
    system, user = sent["messages"]
    assert system["role"] == "system" and "co-writing assistant" in system["content"]
    for fact in (
        "mystery",
        "Mara, a lighthouse keeper",
        "The light went out.",
        "Tom finds the keys",
    ):
        assert fact in user["content"]


async def test_a_stream_yields_chunks_then_the_usage_of_its_final_chunk(provider, fake_mistral):
    events = [event async for event in provider.stream(request())]

    *chunks, usage = events
    assert all(isinstance(chunk, TextChunk) for chunk in chunks) and len(chunks) > 10
    text = "".join(chunk.text for chunk in chunks)
    assert text.startswith(FAKE_REPLY_START)
    assert isinstance(usage, ReportedUsage) and usage.completion_tokens == len(text.split())
    assert fake_mistral.requests[0]["stream"] is True


async def test_a_title_is_asked_for_and_parsed_out(provider, fake_mistral):
    opening = request(want_title=True, kind=Purpose.story_opening)
    call = GenerationCall(opening, provider)
    deltas = [delta async for delta in stream_generation(call)]

    assert call.title == "The Lantern Keeper"
    assert call.text.startswith(FAKE_REPLY_START) and "".join(deltas).strip() == call.text
    assert TITLE_INSTRUCTION in fake_mistral.requests[0]["messages"][1]["content"]

    opening = request(want_title=True, kind=Purpose.story_opening)
    call = GenerationCall(opening, provider)
    await complete_generation(call)
    assert (call.title, call.text[: len(FAKE_REPLY_START)]) == (
        "The Lantern Keeper",
        FAKE_REPLY_START,
    )


async def test_a_streamed_call_hands_no_work_to_a_worker_thread(provider, fake_mistral, monkeypatch):
    """The SDK runs its request hooks (user agent, traceparent, tracing) in a
    worker thread before each request and after its answer: two thread hops
    on the way to the first token. They run on the event loop instead, and
    the request is the same (the fake refuses one without its bearer)."""
    async def tokens() -> list[TextChunk]:
        return [e async for e in provider.stream(request()) if isinstance(e, TextChunk)]

    assert await tokens()  # connected (resolving the address may take a thread)

    def no_thread(*args, **kwargs):
        raise AssertionError("a worker thread was asked for")

    monkeypatch.setattr(asyncio.get_running_loop(), "run_in_executor", no_thread)
    streamed = await tokens()

    assert "".join(chunk.text for chunk in streamed).startswith(FAKE_REPLY_START)
    assert fake_mistral.requests[-1]["stream"] is True


async def test_a_stream_without_usage_is_counted_locally_and_flagged_estimated(provider):
    call = GenerationCall(request("fake-mistral:no-usage"), provider)
    deltas = [delta async for delta in stream_generation(call)]

    assert call.reported_usage is None
    usage = call.usage(Outcome.completed)
    assert usage.estimated
    assert usage.completion_tokens == count_tokens("".join(deltas)) > 0
    assert usage.prompt_tokens == provider.count_prompt_tokens(call.request) > 0


async def test_rate_limiting_becomes_an_upstream_error_saying_so(provider, fake_mistral):
    with pytest.raises(UpstreamError, match="rate-limiting") as caught:
        await provider.complete(request("fake-mistral:rate-limit"))
    assert "retry after 1s" in caught.value.message

    fake_mistral.queue("rate-limit")
    with pytest.raises(UpstreamError, match="rate-limiting"):
        await streamed(provider, request())
    # No retries behind our back: one request each.
    assert len(fake_mistral.requests) == 2


async def test_a_server_error_becomes_an_upstream_error(provider, fake_mistral):
    with pytest.raises(UpstreamError, match="HTTP 500"):
        await provider.complete(request("fake-mistral:server-error"))
    with pytest.raises(UpstreamError, match="HTTP 500"):
        await streamed(provider, request("fake-mistral:server-error"))
    assert len(fake_mistral.requests) == 2


async def test_an_unreachable_provider_is_an_upstream_error(fake_mistral):
    url = fake_mistral.url
    await fake_mistral.stop()
    provider = MistralProvider(api_key=API_KEY, model="m", server_url=url, timeout_seconds=2)
    try:
        with pytest.raises(UpstreamError, match="could not be reached"):
            await provider.complete(request())
    finally:
        await provider.aclose()


async def completed(provider: MistralProvider, req: GenerationRequest) -> None:
    await provider.complete(req)


async def streamed(provider: MistralProvider, req: GenerationRequest) -> None:
    async for _event in provider.stream(req):
        pass


# "slow" holds back the response headers; "stall" goes silent after the first chunk.
@pytest.mark.parametrize(
    ("behaviour", "call"), [("slow", completed), ("slow", streamed), ("stall", streamed)]
)
async def test_a_slow_provider_times_out_quickly(fake_mistral, behaviour, call):
    provider = MistralProvider(
        api_key=API_KEY, model="m", server_url=fake_mistral.url, timeout_seconds=0.5
    )
    try:
        started = time.monotonic()
        with pytest.raises(UpstreamError, match="did not answer within 0.5s"):
            await call(provider, request(f"fake-mistral:{behaviour}"))
        assert time.monotonic() - started < 3  # the fake is slow for 5 s
    finally:
        await provider.aclose()


async def test_a_long_stream_lives_as_long_as_it_keeps_producing(fake_mistral):
    # 12 chunks 0.1 s apart: longer than the first-token and idle limits put together.
    fake_mistral.chunk_delay_ms, fake_mistral.tokens = 100, 12
    provider = MistralProvider(
        api_key=API_KEY,
        model="m",
        server_url=fake_mistral.url,
        first_token_timeout_seconds=0.4,
        idle_timeout_seconds=0.4,
    )
    try:
        events = [event async for event in provider.stream(request())]
        assert len([e for e in events if isinstance(e, TextChunk)]) == 12
    finally:
        await provider.aclose()


async def test_the_first_token_and_the_silence_between_tokens_have_their_own_limits(
    fake_mistral,
):
    provider = MistralProvider(
        api_key=API_KEY,
        model="m",
        server_url=fake_mistral.url,
        first_token_timeout_seconds=0.6,
        idle_timeout_seconds=0.3,
    )
    try:
        for behaviour, limit in (("slow", "0.6s"), ("stall", "0.3s")):
            started = time.monotonic()
            with pytest.raises(UpstreamError, match=f"did not answer within {limit}"):
                await streamed(provider, request(f"fake-mistral:{behaviour}"))
            assert time.monotonic() - started < 3  # the fake is slow for 5 s
    finally:
        await provider.aclose()


async def test_calls_beyond_the_connection_pool_wait_for_a_free_connection(fake_mistral):
    fake_mistral.chunk_delay_ms = 20
    provider = MistralProvider(
        api_key=API_KEY, model="m", server_url=fake_mistral.url, max_connections=2
    )
    try:
        results = await asyncio.gather(*(provider.complete(request()) for _ in range(5)))
        streams = await asyncio.gather(*(streamed(provider, request()) for _ in range(3)))
        assert len(results) == 5 and len(streams) == 3
    finally:
        await provider.aclose()


async def test_the_incoming_deadline_shortens_the_provider_timeout(provider):
    # As the gRPC interceptor sets it for a call with 0.3s left.
    set_deadline_in(0.3)
    try:
        started = time.monotonic()
        with pytest.raises(UpstreamError, match="did not answer within 0.3s"):
            await provider.complete(request("fake-mistral:slow"))
        assert time.monotonic() - started < 3  # the fake is slow for 5 s
    finally:
        set_deadline_in(None)


async def test_calls_one_after_another_reuse_one_connection(provider, fake_mistral):
    """A new connection (TCP and TLS to the real API) would come before every
    call's first token."""
    for _ in range(3):
        events = [event async for event in provider.stream(request())]
        assert isinstance(events[-1], ReportedUsage)
    await provider.complete(request())

    assert len(fake_mistral.requests) == 4
    assert fake_mistral.connections_opened == 1


async def test_a_stream_abandoned_midway_closes_the_connection(provider, fake_mistral):
    stream = provider.stream(request())
    first = await anext(stream)
    assert isinstance(first, TextChunk)
    await stream.aclose()
    # The connection pool is intact for the next call.
    assert (await provider.complete(request())).text.startswith(FAKE_REPLY_START)


def test_nul_characters_from_the_model_are_dropped_before_anything_stores_them():
    from fabula_generation.providers.mistral import _content_text

    assert _content_text("The lamp\x00 went out.") == "The lamp went out."


def test_the_sdks_per_request_work_is_done_once_and_sends_the_same_json():
    """The SDK's request path evaluates type hints and builds wrapper model
    classes per request (milliseconds before a request can leave); the
    provider makes both happen once per type, and hands text messages over as
    the SDK's own models, which it takes without walking them. None of it may
    change a byte of what is sent."""
    from fabula_generation.providers import mistral
    from mistralai.client import models
    from mistralai.client.utils import queryparams, serializers

    hints = queryparams.get_type_hints(models.ChatCompletionStreamRequest)
    assert queryparams.get_type_hints(models.ChatCompletionStreamRequest) is hints
    wrapper = serializers.create_model("Unmarshaller", body=(list[int], ...))
    assert serializers.create_model("Unmarshaller", body=(list[int], ...)) is wrapper

    plain = [
        {"role": "system", "content": "You write mysteries."},
        {"role": "user", "content": "Go on. « Ü » \u2014"},
        {"role": "assistant", "content": "The fog"},
    ]
    image = {"role": "user", "content": [{"type": "text", "text": "What is drawn?"}]}
    as_models = mistral._sdk_messages([*plain, image])
    assert [type(m).__name__ for m in as_models[:3]] == [
        "SystemMessage",
        "UserMessage",
        "AssistantMessage",
    ]
    assert as_models[3] is image

    def sent(messages) -> str:
        request = models.ChatCompletionStreamRequest(
            model="mistral-small-latest",
            messages=serializers.get_pydantic_model(
                messages, list[models.ChatCompletionStreamRequestMessage]
            ),
            max_tokens=300,
        )
        return serializers.marshal_json(request, models.ChatCompletionStreamRequest)

    assert sent(mistral._sdk_messages(plain)) == sent(plain)
