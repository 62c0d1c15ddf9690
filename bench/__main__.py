"""Benchmarks: start a private stack with the real launcher, drive the REST API,
and write latency and memory figures to bench/results/latest.json.

    make bench            # or: .venv/bin/python -m bench --writers 20
    .venv/bin/python -m bench --only read    # one benchmark of BENCHMARKS

Each benchmark of BENCHMARKS writes bench/results/<name>.json (its figures,
baseline, target and whether it was met); all of them together go to
bench/results/latest.json with the writers run.

Figures are for comparing changes on the same machine, not promises: the
offline generator is used so the model's speed is not what is measured.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import asyncio
import json
import platform
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from fabula_devtools.stack import stack_environment, start_stack, stop_stack

RESULTS = Path(__file__).resolve().parent / "results"

# name -> module exposing `run(args) -> dict` (sync or async): figures, baseline,
# ratio, target, met; written to bench/results/<name>.json.
BENCHMARKS = {
    "read": "bench.read",
    "quota": "bench.quota",
    "stream": "bench.stream",
    "usage": "bench.usage",
}


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {
        "n": len(ordered),
        "p50_ms": round(pick(0.50) * 1000, 2),
        "p95_ms": round(pick(0.95) * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
    }


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def one_writer(base_url: str) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {k: [] for k in
                                       ("register", "create_story", "continue_json", "sse_first_token",
                                        "sse_total", "get_story", "list_stories")}
    with httpx.Client(base_url=base_url, timeout=60) as http:
        t = time.perf_counter()
        reply = http.post("/v1/auth/register", json={"email": f"bench-{uuid.uuid4().hex}@example.com",
                                                      "password": "benchmark-password"})
        timings["register"].append(time.perf_counter() - t)
        reply.raise_for_status()
        auth = {"Authorization": f"Bearer {reply.json()['access_token']}"}

        t = time.perf_counter()
        story = http.post("/v1/stories", json={"genre": "fantasy", "characters": ["Ilsa"]}, headers=auth)
        timings["create_story"].append(time.perf_counter() - t)
        story.raise_for_status()
        story_id = story.json()["id"]
        for _ in range(2):
            t = time.perf_counter()
            http.post(f"/v1/stories/{story_id}/continue", json={}, headers=auth).raise_for_status()
            timings["continue_json"].append(time.perf_counter() - t)
        t = time.perf_counter()
        first = None
        with http.stream("POST", f"/v1/stories/{story_id}/continue", json={},
                         headers={**auth, "Accept": "text/event-stream"}) as stream:
            for line in stream.iter_lines():
                if first is None and line.startswith("event: token"):
                    first = time.perf_counter() - t
        timings["sse_total"].append(time.perf_counter() - t)
        timings["sse_first_token"].append(first or 0.0)
        for _ in range(5):
            t = time.perf_counter()
            http.get(f"/v1/stories/{story_id}", headers=auth).raise_for_status()
            timings["get_story"].append(time.perf_counter() - t)
            t = time.perf_counter()
            http.get("/v1/stories", headers=auth).raise_for_status()
            timings["list_stories"].append(time.perf_counter() - t)
    return timings


def run_benchmark(name: str, ns: argparse.Namespace) -> dict:
    run = importlib.import_module(BENCHMARKS[name]).run
    result = asyncio.run(run(ns)) if inspect.iscoroutinefunction(run) else run(ns)
    result = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **result}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({name: result}, indent=2))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writers", type=int, default=20, help="simulated writers (each uses 4 generations)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--only", choices=sorted(BENCHMARKS), help="run this benchmark only")
    parser.add_argument("--read-concurrency", type=int, default=16, help="read: connections of the closed loop")
    parser.add_argument("--read-seconds", type=float, default=5.0, help="read: seconds per leg")
    parser.add_argument("--read-rounds", type=int, default=2, help="read: legs per side")
    # A benchmark module may read options of its own (e.g. stream's --slow-tokens).
    ns, _ = parser.parse_known_args()
    if ns.only:
        run_benchmark(ns.only, ns)
        return
    benchmarks = {name: run_benchmark(name, ns) for name in BENCHMARKS}

    log = Path(tempfile.mkdtemp(prefix="fabula-bench-")) / "stack.log"
    stack = start_stack(stack_environment(LOG_LEVEL="WARNING", GRPC_DEADLINE_SECONDS="10"), log)
    try:
        idle_rss = {name: rss_mib(pid) for name, pid in stack.children.items()}
        started = time.perf_counter()
        with ThreadPoolExecutor(ns.concurrency) as pool:
            runs = list(pool.map(lambda _: one_writer(stack.base_url), range(ns.writers)))
        wall = time.perf_counter() - started
        loaded_rss = {name: rss_mib(pid) for name, pid in stack.children.items()}
    finally:
        stop_stack(stack)

    merged: dict[str, list[float]] = {}
    for run in runs:
        for key, values in run.items():
            merged.setdefault(key, []).extend(values)
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "writers": ns.writers,
        "concurrency": ns.concurrency,
        "wall_seconds": round(wall, 2),
        "generations_per_second": round(ns.writers * 4 / wall, 2),
        "latency": {key: percentiles(values) for key, values in merged.items()},
        "rss_mib": {"idle": idle_rss, "after_load": loaded_rss},
        "benchmarks": benchmarks,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
