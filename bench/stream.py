"""P2 stream: the generation service's Mistral provider against the fake
Mistral API (tests/fakes/fake_mistral.py, run as its own process), measured
side by side with the baseline in one run:

- CPU per streamed token: this provider (SDK request, chunks validated with
  the SDK's CompletionChunk built once) against the SDK's own stream decoder
  (`chat.stream_async` iterated as is), alternating, from this process's
  utime+stime over the tokens streamed.
- Time to first token: through the provider against a bare httpx request
  straight to the fake, alternating.
- Concurrent slow streams: N streams at once, one token every
  --slow-token-ms, --slow-tokens tokens each; all must complete, and this
  process's RSS plus the fake's is reported.

    .venv/bin/python -m bench --only stream [--slow-streams 1000 --slow-tokens 30]

What it does not cover: the gateway and stories hops and the generation
service's database row and billing reservation (the reservation now overlaps
the model call; see docs/architecture.md, "Performance").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
FAKE = ROOT / "tests" / "fakes" / "fake_mistral.py"
TARGET_ADDED_TTFT_MS = 3.0
TARGET_CPU_MS_PER_TOKEN = 0.1
TARGET_RSS_MIB = 1024


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _start_fake(*extra: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, str(FAKE), "--port", str(port), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    proc.stdout.readline()  # "listening on ..."
    return proc, f"http://127.0.0.1:{port}"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _request():
    from fabula_generation.generations.domain import (
        GenerationRequest,
        Purpose,
        StoryInputs,
        Subject,
    )

    return GenerationRequest(
        user_id="bench",
        purpose=Purpose.story_continuation,
        subject=Subject("story", "bench"),
        story=StoryInputs(genre="mystery", title="Bench", characters=("Mara",)),
    )


async def _provider_tokens(provider, request) -> int:
    from fabula_generation.providers import TextChunk

    return sum([isinstance(e, TextChunk) async for e in provider.stream(request)])


async def _sdk_tokens(provider, request) -> int:
    """The baseline: the SDK's own decoder, one pydantic class built per chunk."""
    from fabula_generation.generations.prompts import build_prompt

    events = await provider._client.chat.stream_async(
        model=provider.model, messages=build_prompt(request).messages(), max_tokens=800
    )
    tokens = 0
    async for event in events:
        tokens += sum(1 for c in event.data.choices if c.delta.content)
    return tokens


async def _cpu_per_token(url: str, rounds: int) -> dict:
    from fabula_generation.providers import MistralProvider

    provider = MistralProvider(api_key="bench", model="mistral-small-latest", server_url=url)
    request = _request()
    spent = {"provider": [0.0, 0], "sdk_decoder": [0.0, 0]}
    try:
        await _provider_tokens(provider, request)  # warm up both paths
        await _sdk_tokens(provider, request)
        for _ in range(rounds):
            for name, run in (("provider", _provider_tokens), ("sdk_decoder", _sdk_tokens)):
                before = _cpu()
                tokens = await run(provider, request)
                spent[name][0] += _cpu() - before
                spent[name][1] += tokens
    finally:
        await provider.aclose()
    # This process's CPU includes the HTTP client's work for each token, as the
    # generation service's would.
    per_token = {name: round(cpu * 1000 / max(n, 1), 4) for name, (cpu, n) in spent.items()}
    return {
        "ms_per_token": per_token["provider"],
        "baseline_ms_per_token": per_token["sdk_decoder"],
        "tokens_each": spent["provider"][1],
        "ratio": round(per_token["provider"] / per_token["sdk_decoder"], 3),
        "target_ms_per_token": TARGET_CPU_MS_PER_TOKEN,
    }


async def _ttft(url: str, rounds: int) -> dict:
    from fabula_generation.providers import MistralProvider

    provider = MistralProvider(api_key="bench", model="mistral-small-latest", server_url=url)
    request = _request()
    body = {
        "model": "mistral-small-latest",
        "messages": [{"role": "user", "content": "bench"}],
        "stream": True,
    }
    direct, through = [], []
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": "Bearer b"}) as http:
        try:
            for _ in range(rounds):
                started = time.perf_counter()
                async with http.stream("POST", "/v1/chat/completions", json=body) as reply:
                    async for line in reply.aiter_lines():
                        if line.startswith("data: {"):
                            direct.append(time.perf_counter() - started)
                            break
                started = time.perf_counter()
                stream = provider.stream(request)
                await anext(stream)
                through.append(time.perf_counter() - started)
                await stream.aclose()
        finally:
            await provider.aclose()
    p50_direct = statistics.median(direct) * 1000
    p50_through = statistics.median(through) * 1000
    return {
        "direct_p50_ms": round(p50_direct, 2),
        "provider_p50_ms": round(p50_through, 2),
        "added_p50_ms": round(p50_through - p50_direct, 2),
        "rounds": rounds,
        "target_added_p50_ms": TARGET_ADDED_TTFT_MS,
    }


async def _slow_streams(url: str, fake_pid: int, streams: int, tokens: int, token_ms: int) -> dict:
    from fabula_generation.providers import MistralProvider

    provider = MistralProvider(
        api_key="bench",
        model="mistral-small-latest",
        server_url=url,
        max_connections=streams,
        idle_timeout_seconds=max(5.0, token_ms / 1000 * 3),
    )
    request = _request()
    peak_rss = 0.0

    async def watch_rss() -> None:
        nonlocal peak_rss
        while True:
            peak_rss = max(peak_rss, _rss_mib(os.getpid()) + _rss_mib(fake_pid))
            await asyncio.sleep(0.5)

    watcher = asyncio.create_task(watch_rss())
    started = time.perf_counter()
    try:
        results = await asyncio.gather(
            *(_provider_tokens(provider, request) for _ in range(streams)), return_exceptions=True
        )
    finally:
        watcher.cancel()
        await provider.aclose()
    completed = sum(1 for r in results if r == tokens)
    errors = sorted({repr(r)[:120] for r in results if isinstance(r, BaseException)})
    return {
        "streams": streams,
        "tokens_each": tokens,
        "token_interval_ms": token_ms,
        "completed": completed,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mib_client_and_fake": round(peak_rss, 1),
        "target_rss_mib": TARGET_RSS_MIB,
        "errors": errors[:5],
    }


async def _run(args: argparse.Namespace) -> dict:
    fast, fast_url = _start_fake("--tokens", "200")
    try:
        cpu = await _cpu_per_token(fast_url, args.cpu_rounds)
    finally:
        fast.terminate()
        fast.wait()
    fast, fast_url = _start_fake()
    try:
        ttft = await _ttft(fast_url, args.ttft_rounds)
    finally:
        fast.terminate()
        fast.wait()
    slow, slow_url = _start_fake(
        "--tokens", str(args.slow_tokens), "--chunk-delay-ms", str(args.slow_token_ms)
    )
    try:
        many = await _slow_streams(
            slow_url, slow.pid, args.slow_streams, args.slow_tokens, args.slow_token_ms
        )
    finally:
        slow.terminate()
        slow.wait()
    met = (
        ttft["added_p50_ms"] <= TARGET_ADDED_TTFT_MS
        and cpu["ms_per_token"] <= TARGET_CPU_MS_PER_TOKEN
        and many["completed"] == many["streams"]
        and many["peak_rss_mib_client_and_fake"] < TARGET_RSS_MIB
    )
    return {"cpu_per_token": cpu, "time_to_first_token": ttft, "slow_streams": many, "met": met}


def run(args: argparse.Namespace | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cpu-rounds", type=int, default=5)
    parser.add_argument("--ttft-rounds", type=int, default=100)
    parser.add_argument("--slow-streams", type=int, default=1000)
    parser.add_argument("--slow-tokens", type=int, default=10)
    parser.add_argument("--slow-token-ms", type=int, default=1000)
    own, _ = parser.parse_known_args(sys.argv[1:])
    result = asyncio.run(_run(own))
    result["when"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "stream.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
