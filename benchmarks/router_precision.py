"""The served router's precision and threads: decisions and CPU per decision.

The router as the cpu profile serves it (``build_router``: the layer-1 early-exit probe,
the few-shot head at full depth for the rest), built once per variant (float32 and
bfloat16, each with 1 and 2 torch threads), on real RouterDC questions and the shipped
everyday sets, one query at a time as a lone request comes. Variants alternate query by
query. Reports, per variant: agreement of its decisions with float32's (the probe was
trained in float32), the share decided early, and CPU ms per decision (this process's
CPU time, all threads: what the decision costs the machine) with wall ms p50/p99. The
CPU's flags are in the report. ``int8`` is float32 with every linear layer of the router
LLM quantized to int8 weights (torch's dynamic quantization: int8 matmuls on VNNI/AMX),
a lever weighed for issue 31, not a served precision.

    .venv/bin/python benchmarks/router_precision.py --queries 200
    .venv/bin/python benchmarks/router_precision.py --queries 100 --threads 1 \
        --dtypes float32 bfloat16 int8 --out benchmarks/results/router_int8.json
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

from mixserve_bench.cli.load import machine
from orchestrator import profiles
from orchestrator.config import load_config
from orchestrator.settings import get_settings
from router_model import SpecialistProfile, build_router

ROOT = Path(__file__).resolve().parents[1]


def questions(count: int) -> list[str]:
    picked = sample_queries(count)
    for name in ("everyday_tune.jsonl", "everyday_queries.jsonl"):
        path = ROOT / "benchmarks" / "data" / name
        picked += [json.loads(line)["query"] for line in path.read_text().splitlines() if line]
    return picked


def built(model_dir: str, profiles_: list[SpecialistProfile], dtype: str, common: Any) -> Any:
    """The served router at ``dtype``; ``int8``: float32 with its linear layers quantized."""
    if dtype != "int8":
        return build_router(model_dir, profiles_, dtype=dtype, **common)
    from router_model.backbone import HiddenStateEmbedder

    load = HiddenStateEmbedder.load

    def quantized(self: HiddenStateEmbedder) -> None:
        load(self)
        torch.ao.quantization.quantize_dynamic(
            self.decoder, {torch.nn.Linear}, dtype=torch.qint8, inplace=True
        )

    HiddenStateEmbedder.load = quantized  # type: ignore[method-assign]
    try:
        return build_router(model_dir, profiles_, dtype="float32", **common)
    finally:
        HiddenStateEmbedder.load = load  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=200, help="RouterDC questions.")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks/results/router_precision.json"
    )
    args = parser.parse_args()
    cfg = load_config(profiles.FOLDER / "cpu.yaml")
    r = cfg.router
    model_dir = r.model.location(get_settings().cache_dir)
    probe = r.early_exit
    assert probe is not None
    common: dict[str, Any] = {
        "layer": r.layer,
        "max_query_tokens": r.max_query_tokens,
        "head": r.head,
        "head_params": r.head_params,
        "fallback": r.fallback,
        "exit_artifact": cfg.resolve(probe.artifact),
        "exit_layer": probe.layer,
        "exit_margin": probe.min_margin,
        "exit_agree": probe.agree,
    }
    profiles_ = [
        SpecialistProfile(s.name, s.description, list(s.examples)) for s in cfg.specialists
    ]
    routers = {dt: built(model_dir, profiles_, dt, common) for dt in args.dtypes}
    queries = questions(args.queries)
    for router in routers.values():  # warm: first calls allocate
        router.route_batch(queries[:4])
    variants = [(dt, n) for dt in args.dtypes for n in args.threads]
    cpu: dict[str, list[float]] = {f"{dt}/{n}": [] for dt, n in variants}
    wall: dict[str, list[float]] = {k: [] for k in cpu}
    chosen: dict[str, list[str]] = {k: [] for k in cpu}
    early: dict[str, int] = dict.fromkeys(cpu, 0)
    for q in queries:
        for dt, n in variants:
            key = f"{dt}/{n}"
            torch.set_num_threads(n)
            c0, w0 = time.process_time(), time.perf_counter()
            (decision,) = routers[dt].route_batch([q])
            cpu[key].append(time.process_time() - c0)
            wall[key].append(time.perf_counter() - w0)
            chosen[key].append(decision.choice)
            early[key] += int(decision.layer == probe.layer)
    base = chosen[f"float32/{args.threads[0]}"] if "float32" in args.dtypes else None

    def ms(values: list[float], q: float) -> float:
        return round(float(np.percentile(values, q)) * 1000, 2)

    report: dict[str, Any] = {"queries": len(queries), "machine": machine(), "variants": {}}
    for key in cpu:
        report["variants"][key] = {
            "cpu_ms_mean": round(float(np.mean(cpu[key])) * 1000, 2),
            "cpu_ms_p50": ms(cpu[key], 50),
            "wall_ms_p50": ms(wall[key], 50),
            "wall_ms_p99": ms(wall[key], 99),
            "decided_early": round(early[key] / len(queries), 3),
            "agreement_with_float32": (
                None
                if base is None
                else round(
                    sum(a == b for a, b in zip(chosen[key], base, strict=True)) / len(base), 3
                )
            ),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
