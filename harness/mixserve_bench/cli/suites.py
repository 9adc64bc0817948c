"""``mixserve bench overhead`` and ``mixserve bench overload``: the two measurements the
targets are stated in, each starting what it measures on this machine (a mixserve run of
its own, and for the overhead the real peer, ``vllm serve`` on the same weights) and
stopping it after. Variants are measured in alternating rounds; the JSON summary is the
last line printed with ``--json``."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from mixserve_bench.cli.load import BUILTIN_MIX, MixOpt, _mix, _show, _write, bench_app
from mixserve_bench.cli.peer import FEATURES, peer_template
from orchestrator.cli.common import ConfigOpt, err, fail, load_checked, prepare_models, progress
from orchestrator.config import MixserveConfig
from orchestrator.settings import get_settings

OutOpt = Annotated[Path | None, typer.Option("--out", help="Write the full JSON report.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the summary as JSON, last line.")]


def _quiet_config(cfg: MixserveConfig, retrieval: bool) -> MixserveConfig:
    """The config as measured: no cache (every request reaches an engine), no keys."""
    updates: dict[str, Any] = {
        "cache": cfg.cache.model_copy(update={"enabled": False}),
        "auth": cfg.auth.model_copy(update={"enabled": False}),
    }
    if not retrieval:
        updates["retrieval"] = cfg.retrieval.model_copy(update={"enabled": False})
    return cfg.model_copy(update=updates)


@contextmanager
def _service(cfg: MixserveConfig, state_dir: Path) -> Iterator[Any]:
    from orchestrator.runtime import ServiceRun, free_port

    settings = dataclasses.replace(
        get_settings(), redis_url=None, ray_address=None, state_dir=state_dir
    )
    run = ServiceRun(cfg, settings, port=free_port(), state_file=settings.state_file)
    try:
        with progress() as bars:
            task = bars.add_task("starting mixserve", total=None)
            run.start(step=lambda s: bars.update(task, description=f"mixserve: {s}"))
        yield run
    finally:
        run.stop()


def _round(
    url: str,
    model: str,
    clients: int,
    duration: float,
    max_tokens: int,
    mix: Any,
    slo: float,
    extra: dict[str, Any] | None = None,
    stages: bool = False,
    probe: bool = False,
    spans: Path | None = None,
    resend_at_once: bool = False,
) -> Any:
    """One round's measurement; with ``stages``, its requests' time to first token taken
    apart from their traces (``ttft_stages``); with ``probe``, one request at a time from
    a process of its own beside the load (``probe``: how fast it is refused)."""
    from loadgen import LoadSpec, run_load, summarize
    from loadgen.probe import Probe
    from mixserve_bench.cli.stages import breakdown

    spec = LoadSpec(
        url=url,
        clients=clients,
        duration_s=duration,
        model=model,
        max_tokens=max_tokens,
        timeout_s=max(60.0, slo),
        extra=extra,
        honor_retry_after=not resend_at_once,
    )

    async def measure() -> dict[str, Any]:
        from loadgen.loop_lag import LoopLag
        from loadgen.report import percentiles_ms
        from mixserve_bench.cli.refusals import breakdown as refusals

        prober = Probe(url, duration, model=model).start() if probe else None
        async with LoopLag() as lag:
            outcomes = await run_load(spec, mix)
        report = summarize(outcomes, slo)
        report["client_loop_lag_ms"] = percentiles_ms(lag.samples_s)
        if spans is not None:  # the refusals' time, from both ends
            report["refusal_stages"] = await asyncio.to_thread(refusals, outcomes, spans)
        if prober is not None:
            report["probe"] = await asyncio.to_thread(prober.result)
        report["load"] = {"url": url, "model": model, "clients": clients, "duration_s": duration}
        if stages:
            report["ttft_stages"] = await breakdown(url, outcomes)
        return report

    return measure


def _router_ms(url: str, queries: list[str], count: int) -> dict[str, float | None]:
    """Routing decisions timed in the trace of each request: the router's own span
    (``decision``) and the gateway's wait for it (``as_waited``), p50 and p99 in ms."""
    from loadgen.report import percentile

    own, waited = [], []
    with httpx.Client(base_url=url, timeout=60) as client:
        for i in range(count):
            body = {
                "model": "auto",
                "max_tokens": 1,
                "temperature": 0.7,
                "messages": [{"role": "user", "content": f"{queries[i % len(queries)]} ({i})"}],
            }
            resp = client.post("/v1/chat/completions", json=body)
            resp.raise_for_status()
            rid = resp.json()["mixserve"]["request_id"]
            spans: dict[str, float] = {}
            for _ in range(50):  # spans reach the store within the export delay
                trace = client.get(f"/v1/traces/{rid}")
                if trace.status_code == 200:
                    spans = {s["name"]: s["end"] - s["start"] for s in trace.json()["spans"]}
                    if "mixserve.router.route" in spans and "mixserve.routing" in spans:
                        break
                time.sleep(0.1)
            if "mixserve.router.route" in spans and "mixserve.routing" in spans:
                own.append(spans["mixserve.router.route"])
                waited.append(spans["mixserve.routing"])

    def ms(values: list[float], q: float) -> float | None:
        p = percentile(values, q)
        return None if p is None else round(p * 1000, 2)

    return {
        "decision_p50": ms(own, 0.5),
        "decision_p99": ms(own, 0.99),
        "as_waited_p50": ms(waited, 0.5),
        "as_waited_p99": ms(waited, 0.99),
        "samples": len(own),
    }


def _median(values: list[float]) -> float:
    from loadgen.compare import median

    return median(values)


@bench_app.command("overhead")
def overhead(
    config: ConfigOpt = "cpu",
    clients: Annotated[int, typer.Option(min=1, help="Streaming clients per round.")] = 16,
    duration: Annotated[float, typer.Option(min=1, help="Seconds per round.")] = 30.0,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds of each variant, alternating.")] = 2,
    max_tokens: Annotated[int, typer.Option(min=1, help="`max_tokens` of every request.")] = 64,
    mix: MixOpt = None,
    router_samples: Annotated[int, typer.Option(min=1, help="Routed requests timed.")] = 40,
    feature: Annotated[
        str,
        typer.Option(help="What every request asks for: plain, json_schema or tools (required)."),
    ] = "plain",
    ray_serve_llm: Annotated[
        bool,
        typer.Option(help="Ray Serve LLM's OpenAI app against the peer, not mixserve."),
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option(help="Retrieval, cache and keys off (default: the profile as it runs)."),
    ] = False,
    out_file: OutOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """mixserve against `vllm serve` on the same weights and cores: the peer, mixserve
    pinned to one specialist and mixserve routed (`model: auto`), the profile as it runs
    (retrieval, traces, ledger; `--quiet`: retrieval, cache and keys off), in
    alternating rounds of streaming clients; with `--feature`, every request asks for
    structured output or a tool call, on both sides. With `--ray-serve-llm`, Ray Serve
    LLM's OpenAI app (an `LLMServer` over vLLM's serving layer, in mixserve's Serve, whose
    own specialists then run the fake engine: three engines do not fit here) is measured
    against the peer in mixserve's place."""
    if feature not in FEATURES:
        fail(f"--feature {feature!r}: choose one of {', '.join(FEATURES)}")
    cfg = load_checked(config)
    if quiet:
        cfg = _quiet_config(cfg, retrieval=False)
    spec = cfg.specialists[0]
    if spec.backend != "vllm":
        fail(f"specialist {spec.name} runs engine {spec.backend!r}; the peer is vLLM's server")
    if spec.chat_template is None:
        fail(f"specialist {spec.name} names no chat_template to give the peer")
    prepare_models(cfg)
    queries = _mix(mix, None)
    if feature == "tools" and spec.tool_parser is None:
        fail(f"specialist {spec.name} has no tool_parser: it takes no tools")
    results, router = _or_fail(
        _overhead_rounds, cfg, queries, clients, duration, rounds, max_tokens, router_samples,
        feature, ray_serve_llm,
    )  # fmt: skip
    settings = {
        "clients": clients,
        "duration_s": duration,
        "rounds": rounds,
        "max_tokens": max_tokens,
        "feature": feature,
        "ray_serve_llm": ray_serve_llm,
        "quiet": quiet,
    }
    stages = _stages_p50(results.get("pinned", []))
    _show_stages(stages)
    _report(
        _overhead_summary(results, router),
        results,
        out_file,
        as_json,
        {"router_ms": router, "settings": settings, "pinned_ttft_stages_p50_ms": stages},
    )


def _stages_p50(reports: list[dict[str, Any]]) -> dict[str, float]:
    """Each TTFT stage's p50 (ms), the median over the rounds."""
    from mixserve_bench.cli.stages import STAGES

    out = {}
    for name in STAGES:
        values = [r["ttft_stages"][name]["p50"] for r in reports if r.get("ttft_stages")]
        values = [v for v in values if v is not None]
        if values:
            out[name] = round(_median(values), 1)
    return out


def _show_stages(stages: dict[str, float]) -> None:
    from rich.table import Table

    table = Table(title="pinned: time to first token by stage (p50 ms, median of rounds)")
    table.add_column("stage")
    table.add_column("ms", justify="right")
    for name, value in stages.items():
        table.add_row(name, f"{value:.1f}")
    err.print(table)


def _or_fail(measure: Any, *args: Any) -> Any:
    """What ``measure`` returns; a failure to start or reach what it measures is one line."""
    try:
        return measure(*args)
    except (RuntimeError, TimeoutError, OSError, httpx.HTTPError) as exc:
        fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def _report(
    summary: dict[str, Any],
    results: dict[str, list[dict[str, Any]]],
    out_file: Path | None,
    as_json: bool,
    extra: dict[str, Any],
) -> None:
    """Every round's table, the full report to ``out_file``, the summary last."""
    for name, reports in results.items():
        for i, report in enumerate(reports):
            _show(report, f"{name}, round {i + 1}")
    if out_file is not None:
        _write(out_file, {"summary": summary, "rounds": results, **extra})
    err.print(json.dumps(summary))
    if as_json:
        print(json.dumps(summary))


def _overhead_rounds(
    cfg: MixserveConfig,
    queries: Any,
    clients: int,
    duration: float,
    rounds: int,
    max_tokens: int,
    router_samples: int,
    feature: str = "plain",
    with_ray_llm: bool = False,
) -> Any:
    from loadgen import alternate
    from loadgen.peer import vllm_server
    from mixserve_bench.cli.ray_llm import hosting_config, ray_serve_llm
    from orchestrator.app import OFFLINE_ENV
    from orchestrator.deployments import all_cpus
    from orchestrator.runtime import free_port

    spec = cfg.specialists[0]
    hosting = hosting_config(cfg) if with_ray_llm else cfg  # what mixserve's Serve runs
    with tempfile.TemporaryDirectory(prefix="mixserve-bench-") as tmp:
        template = Path(tmp) / "template.jinja"
        template.write_text(peer_template(cfg, spec))
        kwargs: dict[str, Any] = {**spec.engine_kwargs, "chat_template": str(template)}
        if spec.tool_parser is not None:  # the peer parses and holds calls as mixserve does
            kwargs |= {
                "enable_auto_tool_choice": True,
                "tool_call_parser": spec.tool_parser,
                "tool_strict_level": spec.tool_strict_level,
            }
        model_dir = spec.model.location(get_settings().cache_dir)
        # the peer gets the engine's CPU binding too: the same engine settings on both sides
        binding = {"VLLM_CPU_OMP_THREADS_BIND": all_cpus()} if spec.cpu_binding == "all" else {}
        with ExitStack() as stack:
            run = stack.enter_context(_service(hosting, Path(tmp) / "state"))
            with progress() as bars:
                bars.add_task("starting vllm serve (the peer)", total=None)
                peer = stack.enter_context(
                    vllm_server(
                        model_dir,
                        name=spec.name,
                        port=free_port(),
                        max_model_len=spec.max_model_len,
                        engine_kwargs=kwargs,
                        env={**OFFLINE_ENV, **spec.engine_env, **binding},
                        log_path=get_settings().state_dir / "bench" / "vllm-serve.log",
                    )
                )
            asks = FEATURES[feature]
            stop = {"stop": spec.stop} if spec.stop else {}  # as mixserve adds them
            peer_round = _round(
                peer, spec.name, clients, duration, max_tokens, queries, 60.0, {**asks, **stop}
            )
            if with_ray_llm:
                with progress() as bars:
                    bars.add_task("starting Ray Serve LLM's app", total=None)
                    env = {**OFFLINE_ENV, **spec.engine_env, **binding}
                    url = stack.enter_context(ray_serve_llm(run.url, spec, model_dir, kwargs, env))
                variants = {
                    "vllm_serve": peer_round,
                    "ray_serve_llm": _round(
                        url, spec.name, clients, duration, max_tokens, queries, 60.0,
                        {**asks, **stop},
                    ),
                }  # fmt: skip
            else:
                variants = {
                    "vllm_serve": peer_round,
                    "pinned": _round(
                        run.url, spec.name, clients, duration, max_tokens, queries, 60.0, asks,
                        stages=True,
                    ),
                    "routed": _round(
                        run.url, "auto", clients, duration, max_tokens, queries, 60.0, asks
                    ),
                }  # fmt: skip
            with progress() as bars:
                bars.add_task(
                    f"{rounds} rounds x {len(variants)} variants x {duration:g} s", total=None
                )
                results = asyncio.run(alternate(variants, rounds))
                prompts = [p.text for p in _prompts(queries)]
                router = {} if with_ray_llm else _router_ms(run.url, prompts, router_samples)
    return results, router


def _prompts(mix: Any) -> list[Any]:
    import random

    rng = random.Random(1)
    return [mix.sample(rng) for _ in range(64)]


def _overhead_summary(results: dict[str, list[dict[str, Any]]], router: dict[str, Any]) -> Any:
    def per_round(a: str, b: str, f: Any) -> float:
        return _median(
            [f(x["overall"], y["overall"]) for x, y in zip(results[a], results[b], strict=True)]
        )

    def tput(x: dict[str, Any], y: dict[str, Any]) -> float:
        return float(x["output_tokens_per_s"]) / max(float(y["output_tokens_per_s"]), 1e-9)

    def ttft(q: str) -> Any:
        return lambda x, y: float(x["ttft_ms"][q] or 0) - float(y["ttft_ms"][q] or 0)

    if "ray_serve_llm" in results:  # Ray Serve LLM in mixserve's place
        return {
            "ray_serve_llm_ratio": round(per_round("ray_serve_llm", "vllm_serve", tput), 3),
            "added_ttft_ms": {
                "p50": round(per_round("ray_serve_llm", "vllm_serve", ttft("p50")), 1),
                "p99": round(per_round("ray_serve_llm", "vllm_serve", ttft("p99")), 1),
            },
        }
    return {
        "throughput_ratio": round(per_round("pinned", "vllm_serve", tput), 3),
        "added_ttft_ms": {
            "p50": round(per_round("pinned", "vllm_serve", ttft("p50")), 1),
            "p99": round(per_round("pinned", "vllm_serve", ttft("p99")), 1),
        },
        "routed_ratio": round(per_round("routed", "pinned", tput), 3),
        "router_p50_ms": router["decision_p50"],
    }


@bench_app.command("overload")
def overload(
    config: ConfigOpt = "cpu",
    peak_clients: Annotated[
        list[int] | None, typer.Option("--clients", help="Client counts to find the peak in.")
    ] = None,
    overload_clients: Annotated[int, typer.Option(min=1, help="Clients far past it.")] = 256,
    duration: Annotated[float, typer.Option(min=1, help="Seconds per load.")] = 30.0,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds, alternating peak/overload.")] = 1,
    max_tokens: Annotated[int, typer.Option(min=1, help="`max_tokens` of every request.")] = 64,
    slo: Annotated[float, typer.Option("--slo-s", help="Latency SLO of goodput (s).")] = 30.0,
    mix: MixOpt = None,
    resend_at_once: Annotated[
        bool,
        typer.Option(help="Overload clients send again at once when refused (no Retry-After)."),
    ] = False,
    out_file: OutOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Goodput and latency at the peak against far past it, on a mixserve run of its own:
    the peak is the best goodput over --clients; the overload is --overload-clients, its
    refusals' time taken apart (client, before, in and after the gateway) from the
    client's clock and the gateway's trace of each."""
    cfg = _quiet_config(load_checked(config), retrieval=True)
    prepare_models(cfg)
    queries = _mix(mix, None)
    steps = sorted(set(peak_clients or [8, 16, 32]))
    found, peak, results = _or_fail(
        _overload_rounds, cfg, queries, steps, overload_clients, duration, rounds, max_tokens, slo,
        resend_at_once,
    )  # fmt: skip
    settings = {
        "resend_at_once": resend_at_once,
        "slo_s": slo,
        "duration_s": duration,
        "max_tokens": max_tokens,
        "overload_clients": overload_clients,
    }
    _report(
        _overload_summary(results),
        results,
        out_file,
        as_json,
        {"peak_clients": peak, "search": found, "settings": settings},
    )


def _overload_rounds(
    cfg: MixserveConfig,
    queries: Any,
    steps: list[int],
    overload_clients: int,
    duration: float,
    rounds: int,
    max_tokens: int,
    slo: float,
    resend_at_once: bool = False,
) -> Any:
    from loadgen import alternate

    with tempfile.TemporaryDirectory(prefix="mixserve-bench-") as tmp:
        with _service(cfg, Path(tmp) / "state") as run:
            spans = Path(tmp) / "state" / "traces" if cfg.tracing.file else None
            with progress() as bars:
                bars.add_task(f"finding the peak over {steps} clients", total=None)
                found = {
                    n: asyncio.run(_round(run.url, "auto", n, duration, max_tokens, queries, slo)())
                    for n in steps
                }
            peak = max(steps, key=lambda n: found[n]["overall"]["goodput_rps"])
            with progress() as bars:
                bars.add_task(
                    f"peak ({peak}) and overload ({overload_clients}), {rounds} round(s) each",
                    total=None,
                )
                results = asyncio.run(
                    alternate(
                        {
                            "peak": _round(
                                run.url, "auto", peak, duration, max_tokens, queries, slo
                            ),
                            "overload": _round(
                                run.url,
                                "auto",
                                overload_clients,
                                duration,
                                max_tokens,
                                queries,
                                slo,
                                probe=True,
                                spans=spans,
                                resend_at_once=resend_at_once,
                            ),
                        },
                        rounds,
                    )
                )
    return found, peak, results


def _overload_summary(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    pairs = list(zip(results["overload"], results["peak"], strict=True))

    def ratio(f: Any) -> float:
        return round(_median([f(x["overall"], y["overall"]) for x, y in pairs]), 3)

    worst = [x["overall"] for x, _ in pairs]
    return {
        "goodput_ratio": ratio(lambda x, y: x["goodput_rps"] / max(y["goodput_rps"], 1e-9)),
        "admitted_p99_ratio": ratio(
            lambda x, y: (x["latency_ms"]["p99"] or 0) / max(y["latency_ms"]["p99"] or 0, 1e-9)
        ),
        "reject_p99_ms": max((b["refusal_ms"]["p99"] or 0.0) for b in worst),
        # the same, from a probe of its own beside the load (not swamped by 256 streams)
        "probe_reject_p99_ms": max(
            ((x.get("probe") or {}).get("refused", {}).get("p99") or 0.0) for x, _ in pairs
        ),
        "refusal_stages_p50_p99_ms": {
            stage: [
                _median([x["refusal_stages"][stage]["p50"] or 0.0 for x, _ in pairs]),
                _median([x["refusal_stages"][stage]["p99"] or 0.0 for x, _ in pairs]),
            ]
            for stage in ("client", "before_gateway", "in_gateway", "after_gateway")
            if all("refusal_stages" in x for x, _ in pairs)
        },
        "client_loop_lag_p99_ms": max(
            (x.get("client_loop_lag_ms") or {}).get("p99") or 0.0 for x, _ in pairs
        ),
        "broken_connections": sum(
            v for b in worst for k, v in b["errors"].items() if k.startswith("client_error")
        ),
        "count_5xx": sum(int(b["count_5xx"]) for b in worst),
        "client_timeouts": sum(int(b["client_timeouts"]) for b in worst),
    }


__all__ = ["BUILTIN_MIX", "overhead", "overload"]
