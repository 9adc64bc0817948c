"""CPU time of ``kernels``' ops: the unfused torch reference (``forward_native``, what the
router ran before) against the same code fused by ``torch.compile`` (Inductor's C++/OpenMP
kernels on this CPU), and the Triton kernels where a CUDA device is present. Triton's
interpreter (how the tests run the Triton path here) checks correctness, not speed, so it
is not timed.

Sizes are the ones the service sees: a router batch (32 queries, 64 tokens, Gemma's 640
wide), one query, a retrieval batch (32 chunks, 128 tokens, MiniLM's 384, normalised);
gating and assignment over the cpu profile's 3 specialists and a larger fleet. Variants
alternate, call by call, so the machine's drift hits each alike. Writes
``benchmarks/results/kernel_ops.json``.

    .venv/bin/python benchmarks/kernel_ops.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from kernels import BalancedAssignment, Gating, MaskedMeanPool
from kernels.assignment import sinkhorn_plan

ROOT = Path(__file__).resolve().parents[1]


def cases() -> list[tuple[str, Any, tuple[Any, ...], dict[str, Any]]]:
    gen = torch.Generator().manual_seed(0)

    def pool_args(b: int, t: int, h: int) -> tuple[Any, ...]:
        hidden = torch.randn(b, t, h, generator=gen).to(torch.bfloat16)
        mask = (torch.rand(b, t, generator=gen) > 0.2).long()
        return hidden, mask

    def scores(b: int, e: int) -> tuple[Any, ...]:
        return torch.rand(b, e, generator=gen), torch.rand(e, generator=gen)

    def room(b: int, e: int) -> tuple[Any, ...]:
        s = torch.rand(b, e, generator=gen)
        s[:, 0] += 0.3  # a hot expert
        return s, torch.full((e,), max(1, b // e))

    return [
        ("pool router batch 32x64x640", MaskedMeanPool, pool_args(32, 64, 640), {}),
        ("pool one query 1x16x640", MaskedMeanPool, pool_args(1, 16, 640), {}),
        (
            "pool+normalise retrieval 32x128x384",
            MaskedMeanPool,
            pool_args(32, 128, 384),
            {"normalize": True},
        ),
        ("gating 32x3, lambda 0.2", Gating, scores(32, 3), {"tradeoff": 0.2}),
        ("gating 256x64 softmax top-4", Gating, scores(256, 64), {"temperature": 0.05, "k": 4}),
        ("assignment 32x3", BalancedAssignment, room(32, 3), {}),
        ("assignment 256x16", BalancedAssignment, room(256, 16), {}),
    ]


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/kernel_ops.json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = []
    for name, op_type, op_args, kwargs in cases():
        native = op_type("native")
        variants: dict[str, Callable[[], Any]] = {
            "native": lambda n=native, a=op_args, k=kwargs: n(*a, **k)
        }
        if op_type is BalancedAssignment:
            # the Sinkhorn plan is the compute; the repair is the same Python either way
            logk, logc = native._prepare(*op_args)
            fused_plan = torch.compile(sinkhorn_plan, dynamic=False)
            variants["native"] = lambda a=(logk, logc, native.iterations): sinkhorn_plan(*a)
            variants["compiled"] = lambda p=fused_plan, a=(logk, logc, native.iterations): p(*a)
        else:
            fused = torch.compile(native.forward_native, dynamic=False)
            variants["compiled"] = lambda f=fused, a=op_args, k=kwargs: f(*a, **k)
        if torch.cuda.is_available():
            gpu = tuple(x.cuda() for x in op_args)
            tri = op_type("triton")
            variants["triton"] = lambda t=tri, a=gpu, k=kwargs: (
                t(*a, **k),
                torch.cuda.synchronize(),
            )
        for fn in variants.values():  # warm up (and compile)
            for _ in range(3):
                fn()
        seconds: dict[str, list[float]] = {v: [] for v in variants}
        for _ in range(args.repeats):
            for variant, fn in variants.items():
                seconds[variant].append(timed(fn))
        p50 = {v: statistics.median(s) * 1e6 for v, s in seconds.items()}
        row = {"case": name, "p50_us": {v: round(us, 1) for v, us in p50.items()}}
        row["compiled_over_native"] = round(p50["compiled"] / p50["native"], 3)
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {
        "benchmark": "kernels",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "repeats": args.repeats,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
