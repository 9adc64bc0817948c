"""The replica part of ``mixserve bench skew``: our replica router against Ray's.

One specialist runs two replicas of its real engine (the other specialists stand on the
fake engine: they are not measured and would only take memory and cores). Prompts share
long prefixes: each is a document sent as an earlier turn (``--documents`` of them, about
``--document-words`` words each, fresh ones every round so every round starts with cold
caches) and one of a few questions about it, as retrieved passages or a conversation
would. Each request router (``routing.policy``) gets a service of its own, started in
turn: ``engine_load`` (ours), ``power_of_two`` (Ray's default) and
``prefix_cache_affinity`` (Ray Serve LLM's). Every round is the same closed-loop load of
pinned requests; a round's prompt-cache hit rate is the engines' prefix-cache hits
(``usage.prompt_tokens_details.cached_tokens``) over its prompt tokens.

Services cannot alternate (each holds two engines), so rounds alternate only within a
service; round ``i`` of each router uses the same documents and seed.
"""

from __future__ import annotations

import asyncio
import random
import re
import tempfile
from pathlib import Path
from typing import Any

from mixserve_bench.cli.suites import _median, _service
from orchestrator import profiles
from orchestrator.cli.common import progress
from orchestrator.config import MixserveConfig, with_specialists

ROUTERS = {
    "engine_load": "ours",
    "power_of_two": "ray_default",
    "prefix_cache_affinity": "ray_prefix",
}
QUESTIONS = [
    "Summarize the document above in one sentence.",
    "What is the main topic of the document above?",
    "List two terms the document above uses.",
    "Which setting does the document above mention first?",
]
FAKE_REST = "bench-fake"


def one_real_specialist(
    cfg: MixserveConfig, specialist: str, update: dict[str, Any]
) -> MixserveConfig:
    """``specialist`` with ``update``, on its real engine of its own with one unbound
    OpenMP thread per replica (replicas then share the cores without spinning against
    each other); every other specialist on one fake engine (unmeasured)."""
    specialists = []
    for s in cfg.specialists:
        if s.name == specialist:
            env = {**s.engine_env, "VLLM_CPU_OMP_THREADS_BIND": "nobind", "OMP_NUM_THREADS": "1"}
            own = {"engine": None, "autoscaling": None, "cpu_binding": "auto",
                   "engine_env": env, **update}  # fmt: skip
            specialists.append(s.model_copy(update=own))
        else:
            fake = {"engine": FAKE_REST, "backend": "fake", "engine_kwargs": {},
                    "engine_env": {}, "replicas": 1, "autoscaling": None}  # fmt: skip
            specialists.append(s.model_copy(update=fake))
    gateway = cfg.gateway.model_copy(update={"admission_limit": None})
    changed = cfg.model_copy(update={"gateway": gateway})
    return with_specialists(changed, specialists)


def replicas_config(cfg: MixserveConfig, specialist: str, policy: str) -> MixserveConfig:
    """``specialist`` on two replicas of its own engine, routed by ``policy``; every other
    specialist on one fake engine."""
    routing = cfg.specialist(specialist).routing.model_copy(update={"policy": policy})
    return one_real_specialist(cfg, specialist, {"replicas": 2, "routing": routing})


def documents(seed: int, count: int, words: int) -> list[str]:
    """``count`` distinct documents of about ``words`` words of the shipped user guide's
    vocabulary, each opening with its own title (so none shares a prefix with another)."""
    corpus = " ".join(p.read_text() for p in sorted((profiles.FOLDER / "corpus").glob("*.md")))
    vocabulary = sorted(set(re.findall(r"[A-Za-z][a-z]{2,}", corpus)))
    rng = random.Random(seed)
    return [
        f"Document {seed}-{i}: " + " ".join(rng.choice(vocabulary) for _ in range(words))
        for i in range(count)
    ]


def replica_rounds(
    base: MixserveConfig,
    specialist: str,
    clients: int,
    duration: float,
    rounds: int,
    max_tokens: int,
    count: int,
    words: int,
) -> dict[str, list[dict[str, Any]]]:
    """Each router's reports, ``rounds`` of them, from a service of its own."""
    from loadgen import ContextMix, LoadSpec, run_load, summarize

    results: dict[str, list[dict[str, Any]]] = {}
    for policy in ROUTERS:
        cfg = replicas_config(base, specialist, policy)
        with tempfile.TemporaryDirectory(prefix="mixserve-bench-") as tmp:
            with _service(cfg, Path(tmp) / "state") as run:
                reports = []
                with progress() as bars:
                    bars.add_task(f"{policy}: {rounds} rounds x {duration:g} s", total=None)
                    for i in range(rounds):
                        mix = ContextMix(documents(i, count, words), QUESTIONS)
                        spec = LoadSpec(url=run.url, clients=clients, duration_s=duration,
                                        model=specialist, max_tokens=max_tokens,
                                        timeout_s=120.0, seed=i)  # fmt: skip
                        report = summarize(asyncio.run(run_load(spec, mix)), 60.0)
                        report["load"] = {"router": policy, "round": i, "clients": clients}
                        reports.append(report)
                results[policy] = reports
    return results


def replica_summary(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Ours against each of Ray's, median over rounds of the ratio within a round:
    ``ttft_p99_ratio`` ours / theirs (below 1: ours is faster), ``throughput_ratio`` ours
    / theirs (above 1: ours answers more), and each one's prefix-cache hit rate."""

    def per_round(theirs: str, f: Any) -> float | None:
        values = [
            v
            for x, y in zip(results["engine_load"], results[theirs], strict=True)
            if (v := f(x["overall"], y["overall"])) is not None
        ]
        return round(_median(values), 3) if values else None

    def ttft(x: dict[str, Any], y: dict[str, Any]) -> float | None:
        a, b = x["ttft_ms"]["p99"], y["ttft_ms"]["p99"]
        return float(a) / float(b) if a and b else None

    def tput(x: dict[str, Any], y: dict[str, Any]) -> float | None:
        b = float(y["output_tokens_per_s"])
        return float(x["output_tokens_per_s"]) / b if b else None

    def hits(name: str) -> float | None:
        values = [r["overall"]["prefix_hit_rate"] for r in results[name]]
        values = [v for v in values if v is not None]
        return round(_median(values), 3) if values else None

    summary: dict[str, Any] = {"prefix_hit_rate": hits("engine_load")}
    theirs_by_label = {"vs_ray_default": "power_of_two", "vs_ray_prefix": "prefix_cache_affinity"}
    for label, theirs in theirs_by_label.items():
        summary[label] = {
            "ttft_p99_ratio": per_round(theirs, ttft),
            "throughput_ratio": per_round(theirs, tput),
            "their_prefix_hit_rate": hits(theirs),
        }
    return summary


__all__ = [
    "ROUTERS",
    "documents",
    "one_real_specialist",
    "replica_rounds",
    "replica_summary",
    "replicas_config",
]
