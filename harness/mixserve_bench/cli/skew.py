"""``mixserve bench skew``: load balance across specialists when most queries want one.

The service runs the config with the ``--hot`` specialist on an engine of its own and
the others sharing a second one, each engine with ``--slots`` running slots (so that
the hot specialist's engine saturates first, as a hot expert does). One open-loop
(Poisson) rate, set from the fleet's measured throughput, is offered three ways,
in alternating rounds:

- ``uniform``: the hot specialist's questions and the others' half and half;
- ``skew``: ``--share`` of them the hot specialist's, with balancing on (the router
  batch's joint assignment against free slots, spill-over, waiting for a slot);
- ``skew_off``: the same skewed mix with ``mixserve.balance: false`` on every request
  (each answered by the router's first choice, queueing there).

Then the replica part (``mixserve_bench.cli.replicas``): the hot specialist on two
replicas, prompts sharing long prefixes, our request router against Ray's default and
Ray Serve LLM's prefix-affinity router.

The summary (last line with ``--json``): ``p99_ratio_vs_uniform`` (skew's p99 latency
over uniform's), ``p99_gain_vs_no_balancing`` (skew_off's over skew's), each the median
over rounds of the ratio within a round; ``prefix_hit_rate`` (our replica router's
engines' prefix-cache hit rate) and ``vs_ray_default`` / ``vs_ray_prefix`` (p99 TTFT and
throughput ratios, ours over theirs, and their hit rate); ``autoscaling`` (the step's
p99 with autoscaling on and off, when the second replica came up:
``mixserve_bench.cli.autoscale``). ``--parts`` runs only some; the others are null.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from mixserve_bench.cli.load import _show, bench_app
from mixserve_bench.cli.suites import (
    JsonOpt,
    OutOpt,
    _median,
    _or_fail,
    _quiet_config,
    _report,
    _service,
)
from orchestrator.cli.common import ConfigOpt, err, fail, load_checked, prepare_models, progress
from orchestrator.config import MixserveConfig, with_specialists

SHARED_ENGINE = "rest"
PARTS = ("skew", "replicas", "autoscale")
SUMMARY_KEYS = (
    "p99_ratio_vs_uniform",
    "p99_gain_vs_no_balancing",
    "prefix_hit_rate",
    "vs_ray_default",
    "vs_ray_prefix",
)


def skew_config(cfg: MixserveConfig, hot: str, slots: int, queue: int) -> MixserveConfig:
    """``hot`` on an engine of its own, every other specialist on one shared engine, one
    replica each with ``slots`` running and ``queue`` queued; spill-over to any. Each
    engine computes on a core of its own (CPU 0 and CPU 1), as each expert would have a
    GPU of its own: two engines whose OpenMP threads both spin on both cores slow each
    other down several times (measured here: 11 output tokens/s in all)."""
    specialists = [
        s.model_copy(
            update={
                "engine": None if s.name == hot else SHARED_ENGINE,
                "replicas": 1,
                "autoscaling": None,
                "max_ongoing_requests": slots,
                "max_queued_requests": queue,
                "cpu_binding": "auto",
                "engine_env": {
                    **s.engine_env,
                    "VLLM_CPU_OMP_THREADS_BIND": "0" if s.name == hot else "1",
                },
            }
        )
        for s in cfg.specialists
    ]
    spill = cfg.policy.spill.model_copy(
        update={"enabled": True, "joint_assignment": True, "max_utility_loss": None}
    )
    policy = cfg.policy.model_copy(update={"spill": spill, "default": "single"})
    gateway = cfg.gateway.model_copy(update={"admission_limit": None})
    changed = cfg.model_copy(update={"policy": policy, "gateway": gateway})
    return with_specialists(changed, specialists)


def skew_mix(cfg: MixserveConfig, hot: str, cold: str) -> Any:
    """The two specialists' own example questions, half and half."""
    from loadgen.mix import QueryMix

    return QueryMix({hot: cfg.specialist(hot).examples, cold: cfg.specialist(cold).examples})


@bench_app.command("skew")
def skew(
    config: ConfigOpt = "cpu",
    hot: Annotated[str, typer.Option(help="The specialist most queries want.")] = "code",
    cold: Annotated[str, typer.Option(help="The other specialist of the mix.")] = "general",
    share: Annotated[float, typer.Option(min=0.5, max=1.0, help="Hot share.")] = 0.8,
    slots: Annotated[int, typer.Option(min=1, help="Running slots per engine.")] = 4,
    queue: Annotated[int, typer.Option(min=1, help="Queued slots per engine.")] = 64,
    load: Annotated[
        float, typer.Option(min=0.05, max=2.0, help="Offered rate, times the measured peak.")
    ] = 0.9,
    rate: Annotated[
        float | None, typer.Option(help="Offered rate (requests/s); default: --load x peak.")
    ] = None,
    duration: Annotated[float, typer.Option(min=1, help="Seconds per round.")] = 60.0,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds of each variant, alternating.")] = 2,
    max_tokens: Annotated[int, typer.Option(min=1, help="`max_tokens` of every request.")] = 32,
    parts: Annotated[
        str, typer.Option(help="Which parts, comma-separated: skew, replicas, autoscale.")
    ] = "skew,replicas,autoscale",
    clients: Annotated[int, typer.Option(min=1, help="Replica part: closed-loop clients.")] = 8,
    document_count: Annotated[
        int, typer.Option("--documents", min=1, help="Replica part: documents per round.")
    ] = 24,
    document_words: Annotated[
        int, typer.Option(min=10, max=1200, help="Replica part: words per document.")
    ] = 450,
    replica_tokens: Annotated[
        int, typer.Option(min=1, help="Replica part: `max_tokens` of every request.")
    ] = 16,
    low: Annotated[int, typer.Option(min=1, help="Autoscale part: clients before.")] = 2,
    high: Annotated[int, typer.Option(min=1, help="Autoscale part: clients in the step.")] = 12,
    step_s: Annotated[float, typer.Option(min=1, help="Autoscale part: the step (s).")] = 300.0,
    plot: Annotated[Path | None, typer.Option(help="PNG of every part's figures.")] = None,
    out_file: OutOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Uniform mix against a skewed one, balancing on and off, at one offered rate; then
    our replica router against Ray's on prompts sharing prefixes; then a step in load
    with autoscaling on and off."""
    chosen = {p.strip() for p in parts.split(",") if p.strip()}
    if not chosen or chosen - set(PARTS):
        fail(f"--parts takes {', '.join(PARTS)} (comma-separated), not {parts!r}")
    base = load_checked(config)
    names = [s.name for s in base.specialists]
    for name in (hot, cold):
        if name not in names:
            fail(f"no specialist {name!r} in the config; it has: {', '.join(names)}")
    if hot == cold:
        fail("--hot and --cold must be two different specialists")
    if rate is not None and rate <= 0:
        fail(f"--rate must be above 0, not {rate}")
    quiet = _quiet_config(base, retrieval=False)
    cfg = skew_config(quiet, hot, slots, queue)
    prepare_models(cfg)
    summary: dict[str, Any] = dict.fromkeys(SUMMARY_KEYS)
    results: dict[str, list[dict[str, Any]]] = {}
    peak: dict[str, Any] = {}
    offered = None
    if "skew" in chosen:
        mix = skew_mix(cfg, hot, cold)
        peak, offered, results = _or_fail(
            _skew_rounds, cfg, mix, hot, share, slots, load, rate, duration, rounds, max_tokens
        )
        summary.update(_skew_summary(results))
    if "replicas" in chosen:
        from mixserve_bench.cli.replicas import replica_rounds, replica_summary

        by_router = _or_fail(
            replica_rounds, quiet, hot, clients, duration, rounds, replica_tokens,
            document_count, document_words,
        )  # fmt: skip
        results.update({f"replicas_{name}": reports for name, reports in by_router.items()})
        summary.update(replica_summary(by_router))
    if "autoscale" in chosen:
        from mixserve_bench.cli.autoscale import autoscale_rounds, autoscale_summary

        steps = _or_fail(
            autoscale_rounds, quiet, hot, slots, low, high, duration / 3, step_s, max_tokens
        )
        results.update({name: [report] for name, report in steps.items()})
        summary["autoscaling"] = autoscale_summary(steps)
    settings = {
        "hot": hot,
        "cold": cold,
        "share": share,
        "slots": slots,
        "queue": queue,
        "duration_s": duration,
        "rounds": rounds,
        "max_tokens": max_tokens,
        "offered_rps": offered,
        "parts": sorted(chosen),
        "replica_clients": clients,
        "documents": document_count,
        "document_words": document_words,
        "replica_max_tokens": replica_tokens,
        "autoscale_clients": [low, high],
        "autoscale_step_s": step_s,
    }
    if plot is not None:
        from loadgen.plots import plot_balance

        plot_balance(results, plot, f"mixserve bench skew: {', '.join(sorted(chosen))}")
        err.print(f"wrote {plot}")
    _report(
        summary,
        results,
        out_file,
        as_json,
        {"peak": peak, "settings": settings},
    )


def _open_round(url: str, rate: float, duration: float, max_tokens: int, mix: Any,
                extra: dict[str, Any] | None = None, seed: int = 0) -> Any:  # fmt: skip
    from loadgen import LoadSpec, run_load, summarize

    spec = LoadSpec(
        url=url,
        mode="open",
        rate_per_s=rate,
        duration_s=duration,
        max_tokens=max_tokens,
        timeout_s=120.0,
        seed=seed,
        extra=extra,
    )

    async def measure() -> dict[str, Any]:
        report = summarize(await run_load(spec, mix), 60.0)
        report["load"] = {"url": url, "rate_per_s": rate, "duration_s": duration}
        return report

    return measure


def _skew_rounds(
    cfg: MixserveConfig,
    mix: Any,
    hot: str,
    share: float,
    slots: int,
    load: float,
    rate: float | None,
    duration: float,
    rounds: int,
    max_tokens: int,
) -> Any:
    from loadgen import LoadSpec, alternate, run_load, summarize

    skewed = mix.skewed(hot, share)
    with tempfile.TemporaryDirectory(prefix="mixserve-bench-") as tmp:
        with _service(cfg, Path(tmp) / "state") as run:
            peak: dict[str, Any] = {}
            if rate is None:
                clients = 2 * slots * len(cfg.engine_deployments())  # every slot busy, twice over
                spec = LoadSpec(url=run.url, clients=clients, duration_s=duration,
                                max_tokens=max_tokens, timeout_s=120.0)  # fmt: skip
                with progress() as bars:
                    bars.add_task(f"the peak: uniform mix, {clients} clients", total=None)
                    peak = summarize(asyncio.run(run_load(spec, mix)), 60.0)
                rate = round(load * float(peak["overall"]["throughput_rps"]), 3)
                if rate <= 0:
                    raise RuntimeError("the peak load answered nothing: no rate to offer")
            variants = {
                "uniform": _open_round(run.url, rate, duration, max_tokens, mix),
                "skew": _open_round(run.url, rate, duration, max_tokens, skewed),
                "skew_off": _open_round(
                    run.url, rate, duration, max_tokens, skewed, {"mixserve": {"balance": False}}
                ),
            }
            with progress() as bars:
                bars.add_task(
                    f"{rounds} rounds x {len(variants)} variants x {duration:g} s at {rate}/s",
                    total=None,
                )
                results = asyncio.run(alternate(variants, rounds))
    if peak:
        _show(peak, "peak (uniform, closed loop)")
    return peak, rate, results


def _skew_summary(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    def p99_ratio(a: str, b: str) -> float | None:
        pairs = zip(results[a], results[b], strict=True)
        values = [
            float(x["overall"]["latency_ms"]["p99"]) / float(y["overall"]["latency_ms"]["p99"])
            for x, y in pairs
            if x["overall"]["latency_ms"]["p99"] and y["overall"]["latency_ms"]["p99"]
        ]
        return round(_median(values), 3) if values else None

    failed = {
        name: sum(r["overall"]["refused"] + r["overall"]["count_5xx"] for r in reports)
        for name, reports in results.items()
    }
    if any(failed.values()):
        err.print(f"[yellow]refused or failed requests (p99 covers answered ones): {failed}")
    return {
        "p99_ratio_vs_uniform": p99_ratio("skew", "uniform"),
        "p99_gain_vs_no_balancing": p99_ratio("skew_off", "skew"),
        "refused_or_failed": failed,
    }


__all__ = ["skew", "skew_config", "skew_mix"]
