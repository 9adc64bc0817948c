"""What vLLM's CPU backend asks for, measured here: tcmalloc and Intel OpenMP preloaded
(it warns at every start without them), and its OpenMP thread binding.

Each variant is one start of vLLM's own OpenAI server on the cpu profile's specialist
weights and engine settings, with its environment (LD_PRELOAD, VLLM_CPU_OMP_THREADS_BIND),
loaded by streaming clients for a while, then stopped; variants alternate round by round
so this noisy machine's drift hits each alike. Ratios are against the plain start in the
same round.

    .venv/bin/python benchmarks/cpu_engine_settings.py --rounds 2 \\
        --tcmalloc /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \\
        --iomp /path/to/libiomp5.so

Libraries: Debian's ``libtcmalloc-minimal4`` and PyPI's ``intel-openmp`` (its wheel ships
``lib/libiomp5.so``). Writes ``benchmarks/results/cpu_engine_settings.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from loadgen import LoadSpec, QueryMix, run_load, summarize
from loadgen.compare import median
from loadgen.peer import vllm_server
from mixserve_bench.cli.load import BUILTIN_MIX
from mixserve_bench.cli.peer import peer_template
from orchestrator import profiles
from orchestrator.config import load_config
from orchestrator.runtime import free_port
from orchestrator.settings import get_settings

ROOT = Path(__file__).resolve().parents[1]


def variants(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {"plain": {}}
    if args.tcmalloc:
        found["tcmalloc"] = {"LD_PRELOAD": args.tcmalloc}
    if args.tcmalloc and args.iomp:
        found["tcmalloc+iomp"] = {"LD_PRELOAD": f"{args.tcmalloc}:{args.iomp}"}
    found["bind_all_cores"] = {
        "VLLM_CPU_OMP_THREADS_BIND": "0-1",
        "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
    }
    return found


def one_round(
    env: dict[str, str], args: argparse.Namespace, tmp: Path, cfg: Any, spec: Any
) -> dict[str, Any]:
    template = tmp / "template.jinja"
    template.write_text(peer_template(cfg, spec))
    started = time.monotonic()
    with vllm_server(
        spec.model.location(get_settings().cache_dir),
        name=spec.name,
        port=free_port(),
        max_model_len=spec.max_model_len,
        engine_kwargs={**spec.engine_kwargs, "chat_template": str(template)},
        env={"HF_HUB_OFFLINE": "1", **spec.engine_env, **env},  # the peer binds as vLLM does
        log_path=tmp / "vllm-serve.log",
    ) as url:
        ready_s = time.monotonic() - started
        load = LoadSpec(url=url, clients=args.clients, duration_s=args.duration,
                        model=spec.name, max_tokens=args.max_tokens,
                        extra={"stop": spec.stop})  # fmt: skip
        report = summarize(asyncio.run(run_load(load, QueryMix(BUILTIN_MIX))), 60.0)
    report["ready_s"] = round(ready_s, 1)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tcmalloc", help="path of libtcmalloc(_minimal).so")
    parser.add_argument("--iomp", help="path of libiomp5.so")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "cpu_engine_settings.json"
    )
    args = parser.parse_args()
    cfg = load_config(profiles.FOLDER / "cpu.yaml")  # read once, at the start
    spec = cfg.specialists[0]
    runs = variants(args)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in runs}
    with tempfile.TemporaryDirectory(prefix="cpu-settings-") as tmp:
        for r in range(args.rounds):
            for name, env in runs.items():
                print(f"round {r + 1}: {name} {env}", flush=True)
                results[name].append(one_round(env, args, Path(tmp), cfg, spec))
                o = results[name][-1]["overall"]
                print(f"  {o['output_tokens_per_s']} tok/s, TTFT p50 {o['ttft_ms']['p50']} ms",
                      flush=True)  # fmt: skip
    summary = {}
    for name in runs:
        pairs = zip(results[name], results["plain"], strict=True)
        rows = [(x["overall"], y["overall"]) for x, y in pairs]
        summary[name] = {
            "tokens_per_s_ratio": round(median(
                [x["output_tokens_per_s"] / y["output_tokens_per_s"] for x, y in rows]), 3),
            "ttft_p50_delta_ms": round(median(
                [x["ttft_ms"]["p50"] - y["ttft_ms"]["p50"] for x, y in rows]), 1),
            "tokens_per_s": [x["output_tokens_per_s"] for x, _ in rows],
        }  # fmt: skip
    out = {"benchmark": "cpu_engine_settings", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
           "settings": {k: v for k, v in vars(args).items() if k != "out"},
           "summary": summary, "rounds": results}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
