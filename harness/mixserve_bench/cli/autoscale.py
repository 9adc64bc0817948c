"""The autoscaling part of ``mixserve bench skew``: a step in load on one specialist, with
Serve's autoscaling on (1 to 2 replicas) and off (1 replica).

The specialist runs its real engine, one OpenMP thread per replica and unbound (a second
replica then computes on the other core); the other specialists stand on the fake
engine. Each variant gets a service of its own, started in turn: ``--low`` clients for a
while (the quiet before), then ``--high`` clients (the step), pinned to the specialist.
While the step runs, the bench polls Serve for the deployment's running replicas; the
step's p99 latency, when Serve asked for a second replica and when it came up (its
engine started) are reported.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from mixserve_bench.cli.replicas import one_real_specialist
from mixserve_bench.cli.suites import _service
from orchestrator.cli.common import progress
from orchestrator.config import Autoscaling, MixserveConfig

POLL_S = 1.0


def autoscale_config(
    cfg: MixserveConfig, specialist: str, slots: int, autoscale: bool
) -> MixserveConfig:
    """``specialist`` on its own engine with ``slots`` running slots, autoscaled from one to
    two replicas (a target of half its slots, quick to add, slow to remove) or fixed at
    one; every other specialist on one fake engine."""
    scaling = Autoscaling(
        min_replicas=1,
        max_replicas=2,
        target_ongoing_requests=max(1.0, slots / 2),
        upscale_delay_s=5.0,
        downscale_delay_s=600.0,
        look_back_period_s=5.0,
        metrics_interval_s=1.0,
    )
    update = {
        "replicas": 1,
        "autoscaling": scaling if autoscale else None,
        "max_ongoing_requests": slots,
    }
    return one_real_specialist(cfg, specialist, update)


def engine_app(config_name: str, deployment: str) -> str:
    from orchestrator.app import engine_app as name_of

    return name_of(config_name, deployment)


def _replicas(app: str, deployment: str) -> tuple[int, int]:
    """The deployment's replicas: running, and all (starting ones too)."""
    from ray import serve

    status = serve.status().applications.get(app)
    if status is None or deployment not in status.deployments:
        return 0, 0
    states = {
        str(getattr(s, "value", s)): n
        for s, n in status.deployments[deployment].replica_states.items()
    }
    return states.get("RUNNING", 0), sum(states.values())


class ReplicaWatch:
    """Polls the deployment's running replicas in a thread of its own while it is open."""

    def __init__(self, app: str, deployment: str) -> None:
        self.app, self.deployment = app, deployment
        self.seen: list[tuple[float, int]] = []  # (seconds, running replicas)
        self.asked: list[tuple[float, int]] = []  # (seconds, replicas running or starting)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        started = time.monotonic()
        while not self._done.wait(POLL_S):
            running, total = _replicas(self.app, self.deployment)
            at = round(time.monotonic() - started, 1)
            self.seen.append((at, running))
            self.asked.append((at, total))

    def __enter__(self) -> ReplicaWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._thread.join()


def _step(
    cfg: MixserveConfig, specialist: str, clients: tuple[int, int], times: tuple[float, float],
    max_tokens: int,
) -> dict[str, Any]:  # fmt: skip
    """One service: ``clients[0]`` for ``times[0]`` s, then the step, reported."""
    from loadgen import LoadSpec, QueryMix, run_load, summarize

    mix = QueryMix({specialist: cfg.specialist(specialist).examples})
    with tempfile.TemporaryDirectory(prefix="mixserve-bench-") as tmp:
        with _service(cfg, Path(tmp) / "state") as run:
            specs = [
                LoadSpec(
                    url=run.url,
                    clients=n,
                    duration_s=t,
                    model=specialist,
                    max_tokens=max_tokens,
                    timeout_s=120.0,
                )
                for n, t in zip(clients, times, strict=True)
            ]
            asyncio.run(run_load(specs[0], mix))
            deployment = cfg.specialist(specialist).deployment
            with ReplicaWatch(engine_app(cfg.name, deployment), deployment) as watch:
                step = summarize(asyncio.run(run_load(specs[1], mix)), 60.0)
    step["replicas_seen"] = watch.seen
    step["second_replica_asked_after_s"] = next((t for t, n in watch.asked if n >= 2), None)
    step["second_replica_after_s"] = next((t for t, n in watch.seen if n >= 2), None)
    return step


def autoscale_rounds(
    base: MixserveConfig,
    specialist: str,
    slots: int,
    low: int,
    high: int,
    quiet_s: float,
    step_s: float,
    max_tokens: int,
) -> dict[str, dict[str, Any]]:
    """Each variant's step report, with the replicas seen over it."""
    results: dict[str, dict[str, Any]] = {}
    for variant in ("autoscaling_on", "autoscaling_off"):
        cfg = autoscale_config(base, specialist, slots, variant == "autoscaling_on")
        with progress() as bars:
            bars.add_task(f"{variant}: {low} clients, then {high}", total=None)
            step = _step(cfg, specialist, (low, high), (quiet_s, step_s), max_tokens)
        step["load"] = {"variant": variant, "low": low, "high": high, "step_s": step_s}
        results[variant] = step
    return results


def autoscale_summary(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    on, off = results["autoscaling_on"], results["autoscaling_off"]
    a, b = on["overall"]["latency_ms"]["p99"], off["overall"]["latency_ms"]["p99"]
    return {
        "step_p99_ms": {"on": a, "off": b},
        "step_p99_ratio_on_vs_off": round(float(a) / float(b), 3) if a and b else None,
        "second_replica_asked_after_s": on.get("second_replica_asked_after_s"),
        "second_replica_after_s": on["second_replica_after_s"],
        "step_tokens_per_s": {
            "on": on["overall"]["output_tokens_per_s"],
            "off": off["overall"]["output_tokens_per_s"],
        },
    }


__all__ = ["autoscale_config", "autoscale_rounds", "autoscale_summary"]
