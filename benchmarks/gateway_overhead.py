"""What the orchestration layer costs: one specialist's engine driven two ways, side by side.

- ``http``: the whole request path a client takes — Serve's HTTP proxy, the gateway,
  routing (``model: auto``), retrieval, the specialist stream, SSE back to the client;
- ``direct``: the same specialist's Serve handle, streaming, no proxy/gateway/router.

Both run with the same prompts, the same ``max_tokens`` and ``temperature 0`` (cache
off), alternating rounds so drift on this noisy machine hits both alike. Writes
``benchmarks/results/gateway_overhead.json`` and prints output tokens/s, time to first
token and their ratios per concurrency level.

    .venv/bin/python benchmarks/gateway_overhead.py --concurrency 1 4 16 --requests 32
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from bench_common import QUESTIONS, pct  # benchmarks/ is on the path of its scripts

from orchestrator import profiles
from orchestrator.serving.wire import EngineCall

ROOT = Path(__file__).resolve().parents[1]


async def one_http(client: httpx.AsyncClient, question: str, max_tokens: int) -> dict[str, float]:
    body = {
        "model": "auto",
        "stream": True,
        "temperature": 0,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": question}],
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    ttft, tokens = None, 0
    async with client.stream("POST", "/v1/chat/completions", json=body) as resp:
        resp.raise_for_status()
        async for line in resp.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            choices = event.get("choices") or []
            if ttft is None and choices and choices[0]["delta"].get("content"):
                ttft = time.perf_counter() - start
            if not choices and "usage" in event:
                tokens = event["usage"]["completion_tokens"]
    return {"latency": time.perf_counter() - start, "ttft": ttft or 0.0, "tokens": tokens}


async def one_direct(handle: Any, question: str, max_tokens: int) -> dict[str, float]:
    payload = EngineCall.of(
        {
            "request_id": uuid.uuid4().hex,
            "specialist": "general",  # the cpu profile's first, whose handle this is
            "messages": [("user", question)],
            "max_tokens": max_tokens,
        }
    )
    start = time.perf_counter()
    ttft, tokens = None, 0
    async for item in handle.options(stream=True).generate.remote(payload):
        if ttft is None and item["text"]:
            ttft = time.perf_counter() - start
        tokens = item["completion_tokens"]
    return {"latency": time.perf_counter() - start, "ttft": ttft or 0.0, "tokens": tokens}


async def run_level(fn: Any, concurrency: int, requests: int) -> dict[str, float]:
    queue = list(range(requests))
    results: list[dict[str, float]] = []

    async def worker() -> None:
        while queue:
            i = queue.pop()
            results.append(await fn(QUESTIONS[i % len(QUESTIONS)]))

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    return {
        "requests": len(results),
        "wall_s": wall,
        "output_tokens_per_s": sum(r["tokens"] for r in results) / wall,
        "ttft_p50_s": pct([r["ttft"] for r in results], 0.5),
        "ttft_p99_s": pct([r["ttft"] for r in results], 0.99),
        "latency_p50_s": pct([r["latency"] for r in results], 0.5),
    }


async def measure(
    url: str, handle: Any, levels: list[int], requests: int, max_tokens: int, rounds: int
) -> list[dict[str, Any]]:
    out = []
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        for level in levels:
            runs: dict[str, list[dict[str, float]]] = {"http": [], "direct": []}
            for _ in range(rounds):
                runs["http"].append(
                    await run_level(lambda q: one_http(client, q, max_tokens), level, requests)
                )
                runs["direct"].append(
                    await run_level(lambda q: one_direct(handle, q, max_tokens), level, requests)
                )
            row: dict[str, Any] = {"concurrency": level}
            for path, items in runs.items():
                row[path] = {k: statistics.median(r[k] for r in items) for k in items[0]}
            row["throughput_ratio_http_over_direct"] = (
                row["http"]["output_tokens_per_s"] / row["direct"]["output_tokens_per_s"]
            )
            row["ttft_p50_added_ms"] = 1000 * (
                row["http"]["ttft_p50_s"] - row["direct"]["ttft_p50_s"]
            )
            out.append(row)
            print(
                f"c={level:3d}  http {row['http']['output_tokens_per_s']:7.1f} tok/s  "
                f"direct {row['direct']['output_tokens_per_s']:7.1f} tok/s  "
                f"ratio {row['throughput_ratio_http_over_direct']:.3f}  "
                f"TTFT p50 +{row['ttft_p50_added_ms']:.0f} ms",
                flush=True,
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "gateway_overhead.json"
    )
    args = parser.parse_args()

    from ray import serve

    from orchestrator.config import load_config
    from orchestrator.runtime import ServiceRun
    from orchestrator.runtime.embedded_redis import free_port
    from orchestrator.settings import get_settings

    cfg = load_config(profiles.FOLDER / "cpu.yaml")
    # one specialist (memory), reached through routing all the same; cache off
    cfg = cfg.model_copy(
        update={
            "specialists": [cfg.specialists[0]],
            "router": cfg.router.model_copy(update={"fallback": None}),
            "cache": cfg.cache.model_copy(update={"enabled": False}),
        }
    )
    settings = dataclasses.replace(get_settings(), redis_url=None, ray_address=None)
    deployment = ServiceRun(cfg, settings, port=free_port())
    try:
        deployment.start(step=print)
        handle = serve.get_deployment_handle(cfg.specialists[0].deployment, app_name=cfg.name)
        rows = asyncio.run(
            measure(
                deployment.url,
                handle,
                args.concurrency,
                args.requests,
                args.max_tokens,
                args.rounds,
            )
        )
    finally:
        deployment.stop()
    result = {
        "benchmark": "gateway_overhead",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "levels": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
