"""The OpenAI-compatible provider through the official `openai` SDK, against a
fake server speaking that wire format (as Ollama, vLLM and llama.cpp do)."""

from __future__ import annotations

import json
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
from fabula_generation.generations.service import GenerationCall, stream_generation
from fabula_generation.generations.text import count_tokens
from fabula_generation.providers import (
    OfflineProvider,
    OpenAICompatibleProvider,
    ReportedUsage,
    TextChunk,
    create_provider,
)
from fabula_generation.settings import Settings

MODEL = "llama3.2"
FAKE_REPLY_START = "Rain drummed on the harbour roofs"


def request(direction: str = "", *, want_title: bool = False) -> GenerationRequest:
    return GenerationRequest(
        user_id="user-1",
        purpose=Purpose.story_opening if want_title else Purpose.story_continuation,
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


def provider_for(fake, **options) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(
        base_url=fake.base_url, model=MODEL, **{"timeout_seconds": 5, **options}
    )


@pytest.fixture
async def provider(fake_openai):
    provider = provider_for(fake_openai)
    yield provider
    await provider.aclose()


async def streamed(provider, req: GenerationRequest) -> list:
    return [event async for event in provider.stream(req)]


async def test_a_stream_yields_chunks_then_the_usage_of_its_last_chunk(provider, fake_openai):
    *chunks, usage = await streamed(provider, request("Tom finds the keys"))

    assert all(isinstance(chunk, TextChunk) for chunk in chunks) and len(chunks) > 10
    text = "".join(chunk.text for chunk in chunks)
    assert text.startswith(FAKE_REPLY_START)
    assert isinstance(usage, ReportedUsage) and usage.completion_tokens == len(text.split())

    (sent,) = fake_openai.requests
    assert (sent["model"], sent["stream"], sent["max_tokens"]) == (MODEL, True, 800)
    assert sent["stream_options"] == {"include_usage": True}
    system, user = sent["messages"]
    assert system["role"] == "system" and "co-writing assistant" in system["content"]
    for fact in ("mystery", "Mara, a lighthouse keeper", "The light went out.", "Tom finds"):
        assert fact in user["content"]


async def test_a_stream_without_usage_is_counted_locally_and_flagged_estimated(provider):
    call = GenerationCall(request("fake-openai:no-usage"), provider)
    deltas = [delta async for delta in stream_generation(call)]

    assert call.reported_usage is None
    usage = call.usage(Outcome.completed)
    assert usage.estimated
    assert usage.completion_tokens == count_tokens("".join(deltas)) > 0
    assert usage.prompt_tokens == provider.count_prompt_tokens(call.request) > 0


async def test_a_completion_carries_the_text_and_the_reported_usage(provider, fake_openai):
    completion = await provider.complete(request())

    assert completion.text.startswith(FAKE_REPLY_START)
    assert completion.usage is not None
    assert completion.usage.completion_tokens == len(completion.text.split())
    (sent,) = fake_openai.requests
    assert sent["model"] == MODEL and not sent.get("stream") and "stream_options" not in sent

    # A server that reports no usage: the caller counts it.
    assert (await provider.complete(request("fake-openai:no-usage"))).usage is None


async def test_a_structured_answer_follows_the_schema_sent(provider, fake_openai):
    class Ideas:
        schema_name = "story_ideas"
        max_tokens = 1200

        def json_schema(self):
            return {
                "type": "object",
                "properties": {"ideas": {"type": "array", "items": {"type": "string"}}},
                "required": ["ideas"],
            }

        def messages(self):
            return [{"role": "user", "content": "Three story ideas"}]

        def offline_answer(self):
            return {"ideas": []}

    completion = await provider.complete_json(Ideas())

    assert len(json.loads(completion.text)["ideas"]) == 3 and not completion.cut_off
    (sent,) = fake_openai.requests
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["name"] == "story_ideas"
    assert sent["max_tokens"] == 1200

    fake_openai.queue("cut-off")
    assert (await provider.complete_json(Ideas())).cut_off


async def test_rate_limiting_becomes_an_upstream_error_saying_so(provider, fake_openai):
    with pytest.raises(UpstreamError, match="rate-limiting") as caught:
        await provider.complete(request("fake-openai:rate-limit"))
    assert "retry after 1s" in caught.value.message
    assert caught.value.reason == UpstreamError.RATE_LIMITED

    fake_openai.queue("rate-limit")
    with pytest.raises(UpstreamError, match="rate-limiting"):
        await streamed(provider, request())
    # No retries behind our back: one request each.
    assert len(fake_openai.requests) == 2


async def test_server_errors_become_upstream_errors(provider, fake_openai):
    with pytest.raises(UpstreamError, match="HTTP 500"):
        await provider.complete(request("fake-openai:server-error"))
    with pytest.raises(UpstreamError, match="HTTP 500"):
        await streamed(provider, request("fake-openai:server-error"))
    with pytest.raises(UpstreamError, match="failed while writing"):
        await streamed(provider, request("fake-openai:mid-error"))
    assert len(fake_openai.requests) == 3


async def test_the_configured_key_is_sent_and_a_wrong_one_is_refused(fake_openai_with_key):
    right = provider_for(fake_openai_with_key, api_key="sk-local")
    wrong = provider_for(fake_openai_with_key, api_key="sk-other")
    try:
        assert (await right.complete(request())).text.startswith(FAKE_REPLY_START)
        with pytest.raises(UpstreamError, match="rejected the request \\(HTTP 401\\)"):
            await wrong.complete(request())
    finally:
        await right.aclose()
        await wrong.aclose()


async def test_an_unreachable_server_is_an_upstream_error(fake_openai):
    url = fake_openai.base_url
    await fake_openai.stop()
    provider = OpenAICompatibleProvider(base_url=url, model=MODEL, timeout_seconds=2)
    try:
        with pytest.raises(UpstreamError, match="could not be reached"):
            await provider.complete(request())
    finally:
        await provider.aclose()


async def test_the_first_token_and_the_silence_between_tokens_have_their_own_limits(
    fake_openai,
):
    provider = provider_for(fake_openai, first_token_timeout_seconds=0.6, idle_timeout_seconds=0.3)
    try:
        for behaviour, limit in (("slow", "0.6s"), ("stall", "0.3s")):
            started = time.monotonic()
            with pytest.raises(UpstreamError, match=f"did not answer within {limit}"):
                await streamed(provider, request(f"fake-openai:{behaviour}"))
            assert time.monotonic() - started < 3  # the fake is slow for 5 s
    finally:
        await provider.aclose()


async def test_a_long_stream_lives_as_long_as_it_keeps_producing(fake_openai):
    # 12 chunks 0.1 s apart: longer than the first-token and idle limits put together.
    fake_openai.chunk_delay_ms, fake_openai.tokens = 100, 12
    provider = provider_for(fake_openai, first_token_timeout_seconds=0.4, idle_timeout_seconds=0.4)
    try:
        events = await streamed(provider, request())
        assert len([e for e in events if isinstance(e, TextChunk)]) == 12
    finally:
        await provider.aclose()


async def test_the_incoming_deadline_shortens_the_provider_timeout(provider):
    set_deadline_in(0.3)  # as the gRPC interceptor sets it for a call with 0.3s left
    try:
        started = time.monotonic()
        with pytest.raises(UpstreamError, match="did not answer within 0.3s"):
            await provider.complete(request("fake-openai:slow"))
        assert time.monotonic() - started < 3  # the fake is slow for 5 s
    finally:
        set_deadline_in(None)


async def test_calls_one_after_another_reuse_one_connection(provider, fake_openai):
    for _ in range(3):
        assert isinstance((await streamed(provider, request()))[-1], ReportedUsage)
    await provider.complete(request())

    assert len(fake_openai.requests) == 4 and fake_openai.connections_opened == 1


async def test_a_stream_abandoned_midway_leaves_the_provider_usable(provider):
    stream = provider.stream(request())
    assert isinstance(await anext(stream), TextChunk)
    await stream.aclose()
    assert (await provider.complete(request())).text.startswith(FAKE_REPLY_START)


async def test_configuration_chooses_the_openai_compatible_provider():
    local = {"openai_base_url": "http://localhost:11434/v1", "openai_model": MODEL}
    assert Settings(**local).resolved_provider == "openai"
    # A Mistral key wins under `auto`; an explicit choice wins over both.
    assert Settings(**local, mistral_api_key="sk-test").resolved_provider == "mistral"
    assert Settings(**local, provider="offline").resolved_provider == "offline"
    with pytest.raises(ValueError, match="needs OPENAI_BASE_URL"):
        Settings(provider="openai")

    provider = create_provider(Settings(**local, provider="openai"))
    try:
        assert isinstance(provider, OpenAICompatibleProvider)
        assert (provider.name, provider.model, provider.is_language_model) == (
            "openai",
            MODEL,
            True,
        )
    finally:
        await provider.aclose()
    assert isinstance(create_provider(Settings(provider="offline")), OfflineProvider)
