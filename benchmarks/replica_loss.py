"""The engine replica SIGKILLed under load on the real CPU profile (`mixserve up`, one vLLM
engine for the three specialists), as the issue measured it: closed-loop streaming
clients with a 60 s client timeout, the replica killed once the load is under way. Two
runs, one after the other (each needs the machine): mixserve's retries and resumption on
(the default) and off (`policy.retry.max_retries: 0`, what the service did before).
Reports, per run, requests sent, succeeded, retried and failed (by error), and how long
until the service was ready again.

    .venv/bin/python benchmarks/replica_loss.py --clients 8 --duration 120 --kill-at 20

Writes ``benchmarks/results/replica_loss.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from loadgen import LoadSpec, QueryMix, run_load
from loadgen.report import fault_summary
from mixserve_bench.cli.load import BUILTIN_MIX
from orchestrator import profiles
from orchestrator.runtime import free_port
from orchestrator.runtime.procs import replica_pids

ROOT = Path(__file__).resolve().parents[1]
MIXSERVE = str(Path(sys.executable).with_name("mixserve"))


def config(folder: Path, retries: int) -> Path:
    data = yaml.safe_load((profiles.FOLDER / "cpu.yaml").read_text())
    data["base_dir"] = str(profiles.FOLDER)
    data.setdefault("policy", {})["retry"] = {"max_retries": retries}
    path = folder / f"cpu-retries-{retries}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def engine_replica(run_id: str) -> int:
    found = replica_pids(run_id, "engine-gemma")
    if len(found) != 1:
        raise RuntimeError(f"one engine replica expected, found {found}")
    return found[0]


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


async def load_and_kill(url: str, run_id: str, args: argparse.Namespace) -> dict[str, Any]:
    spec = LoadSpec(
        url=url,
        clients=args.clients,
        duration_s=args.duration,
        model="auto",
        max_tokens=args.max_tokens,
        temperature=0.7,
        timeout_s=args.client_timeout,
    )
    load = asyncio.create_task(run_load(spec, QueryMix(BUILTIN_MIX)))
    await asyncio.sleep(args.kill_at)  # the schedule of the run: load under way first
    victim = engine_replica(run_id)
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
    back = None
    while back is None and not load.done():
        if await asyncio.to_thread(ready, url):
            back = time.monotonic() - killed
        else:
            await asyncio.sleep(1)
    outcomes = await load
    if back is None:  # the load ended first: wait on, bounded
        deadline = time.monotonic() + 600
        while back is None and time.monotonic() < deadline:
            if ready(url):
                back = time.monotonic() - killed
            await asyncio.sleep(1)
    return {**fault_summary(outcomes), "ready_again_after_s": back, "killed_pid": victim}


def one_run(folder: Path, retries: int, args: argparse.Namespace) -> dict[str, Any]:
    state = folder / f"state-{retries}"
    run_id = f"rl{retries}-{os.getpid()}"
    port = free_port()
    env = {**os.environ, "MIXSERVE_STATE_DIR": str(state), "MIXSERVE_RUN_ID": run_id}
    log = (folder / f"up-{retries}.log").open("wb")
    proc = subprocess.Popen(
        [MIXSERVE, "up", "--port", str(port), "--config", str(config(folder, retries))],
        env=env, stdout=log, stderr=log, cwd=ROOT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 900
        while not ready(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mixserve up did not get ready (see {log.name})")
            time.sleep(2)
        return asyncio.run(load_and_kill(url, run_id, args))
    finally:
        subprocess.run([MIXSERVE, "down"], env=env, cwd=ROOT, capture_output=True, timeout=300)
        proc.wait(timeout=120)
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=120.0)
    parser.add_argument("--kill-at", type=float, default=20.0)
    parser.add_argument("--client-timeout", type=float, default=60.0)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/replica_loss.json")
    args = parser.parse_args()
    results: dict[str, Any] = {"settings": vars(args) | {"out": str(args.out)}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, retries in (("retries_on", 3), ("retries_off", 0)):
            results[name] = one_run(Path(tmp), retries, args)
            print(json.dumps({name: results[name]}), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".tmp")
    tmp_out.write_text(json.dumps(results, indent=1))
    tmp_out.replace(args.out)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
