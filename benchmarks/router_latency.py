"""Routing-decision latency: the optimised router against the naive full-depth forward.

Variants, all timed in one run, alternating in blocks of queries so machine drift hits
them alike while each runs warm, as in a dedicated router replica:

- ``naive``: the whole router LLM (all layers), float32, eager, no head;
- ``L<n>``: the routing decision as served — the first ``n`` layers under
  ``torch.compile`` (dynamic shapes, frozen weights), mean pooling, then the kNN head over
  6,000 training points (the RouterDC train size; the head's cost depends only on size);
- ``L<n>-eager`` (``--eager-layers``): the same without ``torch.compile``;
- each in every precision of ``--dtypes`` (``-bf16`` / ``-fp32`` when more than one).

Queries are real ones from the score tables, truncated to ``--max-tokens`` (64) tokens.
Reports p50/p99 per single query, the naive/optimised ratio, and throughput at batch 32.
Writes ``benchmarks/results/router_latency.json``.

    .venv/bin/python benchmarks/router_latency.py --layers 1 2 3 6 18 --eager-layers 18
    .venv/bin/python benchmarks/router_latency.py --layers --eager-layers 1 18 \
        --dtypes bfloat16 float32
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_common import sample_queries

from orchestrator import profiles
from orchestrator.config import load_config
from orchestrator.settings import get_settings
from router_model.backbone import HiddenStateEmbedder
from router_model.heads import KnnHead

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=profiles.FOLDER / "cpu.yaml")
    parser.add_argument("--layers", type=int, nargs="*", default=[2, 3, 6])
    parser.add_argument(
        "--eager-layers", type=int, nargs="*", default=[], help="Also time these uncompiled."
    )
    parser.add_argument(
        "--dtypes",
        nargs="+",
        choices=["bfloat16", "float32"],
        help="router LLM precisions to time (default: the config's router.dtype)",
    )
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="Alternating blocks per variant.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/router_latency.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    args.dtypes = args.dtypes or [config.router.dtype]
    directory = config.router.model.location(get_settings().cache_dir)
    queries = sample_queries(args.queries)
    variants: dict[str, Any] = {}
    naive = HiddenStateEmbedder(directory, _depth(directory), args.max_tokens, dtype="float32")
    naive.load()
    variants["naive"] = naive.embed
    rng = np.random.default_rng(0)
    load_s: dict[str, float] = {}
    plan = [(layer, True, dtype) for layer in args.layers for dtype in args.dtypes]
    plan += [(layer, False, dtype) for layer in args.eager_layers for dtype in args.dtypes]
    short = {"bfloat16": "-bf16", "float32": "-fp32"}
    for layer, compiled, dtype in plan:
        name = f"L{layer}" + ("" if compiled else "-eager")
        name += short[dtype] if len(args.dtypes) > 1 else ""
        started = time.monotonic()
        lm = HiddenStateEmbedder(directory, layer, args.max_tokens, dtype=dtype, compile=compiled)
        lm.load()
        head = KnnHead(k=50, prior_weight=100)
        dim = lm.embed(["x"]).shape[1]
        head.fit_scores(
            rng.normal(size=(6000, dim)), rng.uniform(size=(6000, 7)), rng.integers(0, 5, 6000)
        )
        variants[name] = lambda texts, lm=lm, head=head: head.predict(lm.embed(texts))
        load_s[name] = round(time.monotonic() - started, 1)
    tokens = [min(naive.count_tokens(q), args.max_tokens) for q in queries]
    for fn in variants.values():  # warm up
        for q in queries[:5]:
            fn([q])
    times: dict[str, list[float]] = {name: [] for name in variants}
    for block in np.array_split(np.arange(len(queries)), args.rounds):
        for name, fn in variants.items():
            for i in block:
                started = time.perf_counter()
                fn([queries[i]])
                times[name].append((time.perf_counter() - started) * 1000)
    batch = queries[:32]
    throughput = {}
    for name, fn in variants.items():
        fn(batch)
        started = time.perf_counter()
        for _ in range(3):
            fn(batch)
        throughput[name] = 3 * len(batch) / (time.perf_counter() - started)
    naive_p50 = float(np.percentile(times["naive"], 50))
    results: dict[str, Any] = {
        "queries": len(queries),
        "max_tokens": args.max_tokens,
        "tokens_p50": float(np.median(tokens)),
        "threads": args.threads,
        "torch": torch.__version__,
        "load_and_compile_s": load_s,
        "variants": {},
    }
    for name in variants:
        p50 = float(np.percentile(times[name], 50))
        results["variants"][name] = {
            "p50_ms": p50,
            "p99_ms": float(np.percentile(times[name], 99)),
            "speedup_vs_naive": naive_p50 / p50,
            "batch32_queries_per_s": throughput[name],
        }
        print(
            f"{name:14s} p50 {p50:6.1f} ms  p99 {results['variants'][name]['p99_ms']:6.1f} ms  "
            f"x{naive_p50 / p50:4.1f} vs naive  batch 32: {throughput[name]:6.0f} q/s",
            flush=True,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out} (query tokens p50 {results['tokens_p50']:.0f})")


def _depth(directory: str) -> int:
    return int(json.loads((Path(directory) / "config.json").read_text())["num_hidden_layers"])


if __name__ == "__main__":
    main()
