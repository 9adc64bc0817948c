"""Serve's high-throughput mode against its default, side by side: two `mixserve up` runs
of the cpu profile at once (each its own local Ray, Redis and port), one with Serve's
defaults (its Python HTTP proxy, handle calls by Ray object reference), one as mixserve
starts a local Ray (``RAY_SERVE_THROUGHPUT_OPTIMIZED``: gRPC between replicas; HAProxy
in front of the gateway replica). Rounds of streaming clients pinned to one specialist
alternate between them, so this machine's drift hits both alike; both are stopped at the
end (``mixserve down``). Two runs take ~16 GiB.

    .venv/bin/python benchmarks/serve_mode.py --rounds 3 --duration 20

Writes ``benchmarks/results/serve_mode.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from loadgen import LoadSpec, QueryMix, run_load, summarize
from loadgen.compare import alternate, median
from loadgen.peer import wait_until_up
from mixserve_bench.cli.load import BUILTIN_MIX
from orchestrator.runtime import free_port

ROOT = Path(__file__).resolve().parents[1]
MIXSERVE = str(Path(sys.executable).with_name("mixserve"))
# set to 0 in the environment, mixserve leaves Serve at its defaults (runtime.serve_env)
DEFAULT_MODE = {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "0", "RAY_SERVE_ENABLE_HA_PROXY": "0"}


def start(state: Path, port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    full = {**os.environ, "MIXSERVE_STATE_DIR": str(state), **env}
    with log.open("wb") as out:
        return subprocess.Popen(
            [MIXSERVE, "up", "--port", str(port)], env=full, stdout=out, stderr=out, cwd=ROOT
        )


def stop(state: Path, proc: subprocess.Popen[bytes]) -> None:
    env = {**os.environ, "MIXSERVE_STATE_DIR": str(state)}
    subprocess.run([MIXSERVE, "down"], env=env, cwd=ROOT, capture_output=True, timeout=300)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


def measure(url: str, args: argparse.Namespace, mix: QueryMix) -> Any:
    spec = LoadSpec(
        url=url,
        clients=args.clients,
        duration_s=args.duration,
        model=args.model,
        max_tokens=args.max_tokens,
    )

    async def one() -> dict[str, Any]:
        return summarize(await run_load(spec, mix), 60.0)

    return one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--model", default="general")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/serve_mode.json")
    args = parser.parse_args()
    mix = QueryMix(BUILTIN_MIX)
    modes = {"serve_default": DEFAULT_MODE, "throughput_haproxy": {}}
    with tempfile.TemporaryDirectory(prefix="mixserve-mode-") as tmp:
        runs = {}
        try:
            for name, env in modes.items():  # one at a time: two starts at once would crawl
                state, port = Path(tmp) / name, free_port()
                proc = start(state, port, env, Path(tmp) / f"{name}.log")
                runs[name] = (state, proc, f"http://127.0.0.1:{port}")
                wait_until_up(f"{runs[name][2]}/readyz", proc, 600, f"mixserve up ({name})")
                print(f"{name} ready at {runs[name][2]}", flush=True)
            variants = {name: measure(url, args, mix) for name, (_, _, url) in runs.items()}
            results = asyncio.run(alternate(variants, args.rounds))
        finally:
            for state, proc, _ in runs.values():
                stop(state, proc)
    tps = {n: [r["overall"]["output_tokens_per_s"] for r in rs] for n, rs in results.items()}
    ttft = {n: [r["overall"]["ttft_ms"]["p50"] for r in rs] for n, rs in results.items()}
    pairs = zip(tps["throughput_haproxy"], tps["serve_default"], strict=True)
    summary = {
        "throughput_ratio": round(median([a / max(b, 1e-9) for a, b in pairs]), 3),
        "tokens_per_s": tps,
        "ttft_p50_ms": ttft,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "rounds": results}, indent=1))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
