"""P2 stream: the generation service's Mistral provider against the fake
Mistral API (tests/fakes/fake_mistral.py, run as its own process), measured
side by side with the baseline in one run:

- CPU per streamed token: this provider (SDK request, chunks validated with
  the SDK's CompletionChunk built once) against the SDK's own stream decoder
  (`chat.stream_async` iterated as is), alternating, from this process's
  utime+stime over the tokens streamed.
- Time to first token through the whole path: a client continuing a story
  over the gateway's SSE (gateway -> stories: claim -> generation: started
  row, billing reservation, model call -> the fake) against the same client
  sending the fake directly the very request generation sent it, alternating,
  on a private stack (the real launcher) with the Mistral provider pointed
  at the fake. The provider layer alone (the SDK's request against a bare
  httpx request) is measured beside it, to tell the hops apart.
- Concurrent slow streams: N streams at once, one token every
  --slow-token-ms, --slow-tokens tokens each; all must complete, and this
  process's RSS plus the fake's is reported.

    .venv/bin/python -m bench --only stream [--slow-streams 1000 --slow-tokens 30]

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


# A plan no benchmark run exhausts: every continue is reserved like a user's.
_BENCH_PLANS = '{"bench": {"generations_limit": 1000000, "cost_limit_usd": "1000000"}}'


async def _first_sse_token(http: httpx.AsyncClient, path: str, headers: dict) -> float:
    """Seconds from sending a continue to its first `token` event; the stream
    is read to its end (the story is free again for the next one)."""
    first, event = None, ""
    started = time.perf_counter()
    async with http.stream("POST", path, json={}, headers=headers) as reply:
        if reply.status_code != 200:
            raise RuntimeError(f"continue answered {reply.status_code}: {await reply.aread()!r}")
        async for line in reply.aiter_lines():
            if first is None and line.startswith("data: ") and event == "token":
                first = time.perf_counter() - started
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif not line:
                event = ""
    if first is None:
        raise RuntimeError("the continue streamed no token")
    return first


async def _first_direct_token(http: httpx.AsyncClient, url: str, body: dict) -> float:
    """Seconds from sending `body` to the fake to its first chunk with text;
    read to its end like the gateway's stream."""
    first = None
    started = time.perf_counter()
    async with http.stream("POST", f"{url}/v1/chat/completions", json=body) as reply:
        async for line in reply.aiter_lines():
            if first is None and line.startswith("data: {"):  # the fake's first chunk has text
                first = time.perf_counter() - started
    if first is None:
        raise RuntimeError("the fake streamed no token")
    return first


async def _round_trips(stories_address: str, rounds: int = 200) -> dict:
    """p50 of the two kinds of round trip the path cannot avoid, each alone:
    a no-op gRPC call (the standard health check, to stories) and a
    one-row statement (SELECT 1 on the same Postgres)."""
    import asyncpg
    import grpc
    from fabula_devtools.stack import ADMIN_URL
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    grpc_times, db_times = [], []
    async with grpc.aio.insecure_channel(stories_address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(rounds):
            started = time.perf_counter()
            await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
            grpc_times.append(time.perf_counter() - started)
    connection = await asyncpg.connect(ADMIN_URL)
    try:
        for _ in range(rounds):
            started = time.perf_counter()
            await connection.fetchval("SELECT 1")
            db_times.append(time.perf_counter() - started)
    finally:
        await connection.close()
    return {
        "grpc": statistics.median(grpc_times[rounds // 10 :]) * 1000,
        "db": statistics.median(db_times[rounds // 10 :]) * 1000,
    }


async def _path_ttft(fake_url: str, base_url: str, rounds: int, stories_address: str) -> dict:
    """Alternately: a continue over the gateway's SSE, and the request the
    generation service sent the fake for it, sent directly (same prompt)."""
    headers = {"Accept": "text/event-stream"}
    through, direct = [], []
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=30) as api,
        httpx.AsyncClient(timeout=30, headers={"Authorization": "Bearer bench"}) as fake,
    ):
        reply = await api.post(
            "/v1/auth/register",
            json={
                "email": f"bench-{os.getpid()}-{time.time_ns()}@example.com",
                "password": "benchmark-password",
            },
        )
        reply.raise_for_status()
        headers["Authorization"] = f"Bearer {reply.json()['access_token']}"
        story = await api.post(
            "/v1/stories",
            json={"genre": "mystery", "characters": ["Mara"]},
            headers={**headers, "Accept": "application/json"},  # the opening as JSON
        )
        story.raise_for_status()
        path = f"/v1/stories/{story.json()['id']}/continue"
        # Warm up both sides (connections, the story's context reaching its
        # steady size of STORIES_CONTEXT_SEGMENTS segments).
        for _ in range(8):
            await _first_sse_token(api, path, headers)
        for _ in range(rounds):
            await fake.post(f"{fake_url}/_fake/reset")
            through.append(await _first_sse_token(api, path, headers))
            sent = (await fake.get(f"{fake_url}/_fake/requests")).json()["requests"][-1]
            direct.append(await _first_direct_token(fake, fake_url, sent))
    p50_direct = statistics.median(direct) * 1000
    p50_through = statistics.median(through) * 1000
    q = lambda xs: sorted(xs)[int(0.95 * len(xs))] * 1000  # noqa: E731
    trips = await _round_trips(stories_address)
    # What the path must add at the least, one after another: three gRPC round
    # trips (gateway-stories, stories-generation, generation-billing; the
    # first token comes back over the first two) and three statements (the
    # claim, the context read, the reservation; the started row overlaps it).
    floor = 3 * trips["grpc"] + 3 * trips["db"]
    return {
        "direct_p50_ms": round(p50_direct, 2),
        "gateway_p50_ms": round(p50_through, 2),
        "added_p50_ms": round(p50_through - p50_direct, 2),
        "direct_p95_ms": round(q(direct), 2),
        "gateway_p95_ms": round(q(through), 2),
        "rounds": rounds,
        "target_added_p50_ms": TARGET_ADDED_TTFT_MS,
        "noop_grpc_round_trip_p50_ms": round(trips["grpc"], 2),
        "db_round_trip_p50_ms": round(trips["db"], 2),
        "floor_added_ms": round(floor, 2),
    }


def _path_stack(fake_url: str):
    import tempfile

    from fabula_devtools.stack import stack_environment, start_stack

    env = stack_environment(
        LOG_LEVEL="WARNING",
        GENERATION_PROVIDER="mistral",
        MISTRAL_API_KEY="bench",
        MISTRAL_SERVER_URL=fake_url,
        BILLING_PLANS_JSON=_BENCH_PLANS,
        BILLING_DEFAULT_PLAN="bench",
        GRPC_DEADLINE_SECONDS="10",
    )
    log = Path(tempfile.mkdtemp(prefix="fabula-bench-stream-")) / "stack.log"
    return start_stack(env, log)


async def _slow_streams(url: str, fake_pid: int, streams: int, tokens: int, token_ms: int) -> dict:
    from fabula_generation.providers import MistralProvider

    provider = MistralProvider(
        api_key="bench",
        model="mistral-small-latest",
        server_url=url,
        max_connections=streams,
        # Time limits as deployed (MISTRAL_*_TIMEOUT_SECONDS defaults): with
        # this process and the fake sharing two cores, a thousand streams
        # starting at once finish between 12 and 19 s instead of 11.
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


async def _run_path(args: argparse.Namespace) -> dict:
    from fabula_devtools.stack import stop_stack

    fake, fake_url = _start_fake()
    stack = await asyncio.to_thread(_path_stack, fake_url)
    try:
        stories = f"127.0.0.1:{stack.env['STORIES_GRPC_PORT']}"
        return await _path_ttft(fake_url, stack.base_url, args.path_rounds, stories)
    finally:
        await asyncio.to_thread(stop_stack, stack)
        fake.terminate()
        fake.wait()


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
    path = await _run_path(args)
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
        path["added_p50_ms"] <= TARGET_ADDED_TTFT_MS
        and cpu["ms_per_token"] <= TARGET_CPU_MS_PER_TOKEN
        and many["completed"] == many["streams"]
        and many["peak_rss_mib_client_and_fake"] < TARGET_RSS_MIB
    )
    return {
        "cpu_per_token": cpu,
        "time_to_first_token": path,
        "provider_time_to_first_token": ttft,
        "slow_streams": many,
        "met": met,
    }


def run(args: argparse.Namespace | None = None) -> dict:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--cpu-rounds", type=int, default=5)
    parser.add_argument("--ttft-rounds", type=int, default=100)
    parser.add_argument("--path-rounds", type=int, default=100)
    parser.add_argument("--path-only", action="store_true", help="time to first token only")
    parser.add_argument("--slow-streams", type=int, default=1000)
    parser.add_argument("--slow-tokens", type=int, default=30)
    parser.add_argument("--slow-token-ms", type=int, default=1000)
    own, _ = parser.parse_known_args(sys.argv[1:])
    if own.path_only:  # a quick look while working; nothing written
        return {"time_to_first_token": asyncio.run(_run_path(own))}
    result = asyncio.run(_run(own))
    result["when"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "stream.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
