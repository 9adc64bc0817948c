"""What tracing costs the request path: the same app with tracing off and on, side by side.

The CPU profile with fake specialist engines that answer at once (so the time measured is
the orchestration's: proxy, gateway, router, retriever, Redis, and the spans), cache off.
``on`` is the embedded default (every request traced, spans to the Redis store and the
JSONL file); ``off`` sets ``tracing.enabled: false``. The two are deployed in alternating
rounds (off, on, off, on, ...) so the machine's drift hits both alike; each round sends
``--requests`` non-streamed chat completions from ``--concurrency`` clients. Writes
``benchmarks/results/tracing_overhead.json``.

    .venv/bin/python benchmarks/tracing_overhead.py --rounds 2 --requests 300 --concurrency 8
    .venv/bin/python benchmarks/tracing_overhead.py --model general \
        --out benchmarks/results/tracing_overhead_pinned.json
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from bench_common import QUESTIONS, pct  # benchmarks/ is on the path of its scripts

from orchestrator import profiles

ROOT = Path(__file__).resolve().parents[1]


async def load(url: str, concurrency: int, requests: int, model: str) -> dict[str, float]:
    todo = list(range(requests))
    latencies: list[float] = []

    async def worker(client: httpx.AsyncClient) -> None:
        while todo:
            i = todo.pop()
            body = {
                "model": model,
                "temperature": 0.5,
                "max_tokens": 16,
                "messages": [{"role": "user", "content": f"{QUESTIONS[i % 4]} ({i})"}],
            }
            start = time.perf_counter()
            resp = await client.post("/v1/chat/completions", json=body)
            resp.raise_for_status()
            latencies.append(time.perf_counter() - start)

    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        await warm_up(client)
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return {
        "requests_per_s": len(latencies) / wall,
        "latency_p50_ms": 1000 * pct(latencies, 0.5),
        "latency_p99_ms": 1000 * pct(latencies, 0.99),
    }


async def warm_up(client: httpx.AsyncClient) -> None:
    for q in QUESTIONS:
        body = {"model": "auto", "max_tokens": 4, "messages": [{"role": "user", "content": q}]}
        (await client.post("/v1/chat/completions", json=body)).raise_for_status()


def config(tracing: bool) -> Any:
    from orchestrator.config import load_config

    cfg = load_config(profiles.FOLDER / "cpu.yaml")
    specialists = [
        s.model_copy(
            update={"backend": "fake", "engine_kwargs": {"token_delay_s": 0.0}, "engine_env": {}}
        )
        for s in cfg.specialists
    ]
    return cfg.model_copy(
        update={
            "specialists": specialists,
            "cache": cfg.cache.model_copy(update={"enabled": False}),
            "tracing": cfg.tracing.model_copy(update={"enabled": tracing}),
        }
    )


def one_round(
    tracing: bool, concurrency: int, requests: int, model: str, state: Path
) -> dict[str, float]:
    from orchestrator.runtime import ServiceRun
    from orchestrator.runtime.embedded_redis import free_port
    from orchestrator.settings import get_settings

    settings = dataclasses.replace(
        get_settings(), redis_url=None, ray_address=None, state_dir=state
    )
    deployment = ServiceRun(config(tracing), settings, port=free_port())
    try:
        deployment.start()
        return asyncio.run(load(deployment.url, concurrency, requests, model))
    finally:
        deployment.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--model",
        default="auto",
        help="auto (routed: the router LLM dominates) or a specialist (no router pass)",
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "tracing_overhead.json"
    )
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as state:
        for r in range(args.rounds):
            for mode in ("off", "on"):
                result = one_round(
                    mode == "on", args.concurrency, args.requests, args.model, Path(state)
                )
                runs[mode].append(result)
                print(f"round {r + 1} tracing {mode:3s}: {json.dumps(result)}", flush=True)
    summary = {m: {k: statistics.median(x[k] for x in v) for k in v[0]} for m, v in runs.items()}
    ratio = summary["on"]["requests_per_s"] / summary["off"]["requests_per_s"]
    added = summary["on"]["latency_p50_ms"] - summary["off"]["latency_p50_ms"]
    print(f"throughput on/off {ratio:.3f}; p50 latency added {added:+.1f} ms")
    out = {
        "benchmark": "tracing_overhead",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "runs": runs,
        "median": summary,
        "throughput_ratio_on_over_off": ratio,
        "latency_p50_added_ms": added,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
