"""``mixserve bench ceiling``: what the orchestration itself can carry. The chosen profile
runs with every engine replaced by the fake at a token delay standing in for a fast GPU
engine (default 0.5 ms); closed-loop streaming clients saturate it, pinned to one
specialist and routed (``model: auto``), in alternating rounds; each part of the service's
CPU time is read from /proc around each round. The load generator shares the machine's
cores and is counted apart, so the report gives both what was measured here and what
the service's own CPU time per request allows on two cores."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from mixserve_bench.cli.load import MixOpt, _mix, _show, _write, bench_app
from mixserve_bench.cli.suites import JsonOpt, OutOpt, _or_fail, _service
from orchestrator.cli.common import (
    ConfigOpt,
    err,
    fail,
    load_checked,
    out,
    prepare_models,
    progress,
)
from orchestrator.config import MixserveConfig, with_specialists

VARIANTS = ("pinned", "routed")
CORES = 2  # the targets are stated per two cores


def fake_fleet(
    cfg: MixserveConfig, token_delay_s: float, answer_tokens: int, stream_batch_ms: float | None
) -> MixserveConfig:
    """``cfg`` with every specialist's engine on the fake at ``token_delay_s`` a token,
    answering ``answer_tokens`` tokens (with ``stream_batch_ms`` when given); everything
    else (router, retrieval, tracing, ledger, cache, auth) as the profile has it."""
    kwargs = {"token_delay_s": token_delay_s, "answer_tokens": answer_tokens}
    update: dict[str, Any] = {"backend": "fake", "engine_kwargs": kwargs, "engine_env": {}}
    if stream_batch_ms is not None:
        update["stream_batch_ms"] = stream_batch_ms
    specs = [s.model_copy(update=update) for s in cfg.specialists]
    return with_specialists(cfg, specs)


def _variant(
    url: str, model: str, clients: int, duration: float, mix: Any, delay_s: float,
    tokens: int, api_key: Any,
) -> Any:  # fmt: skip
    """One round of one variant: the load's report with the CPU each part spent."""
    from loadgen import LoadSpec, run_load, summarize
    from loadgen.cpu import CpuMeter, per_request_ms
    from loadgen.report import percentiles_ms

    spec = LoadSpec(
        url=url, clients=clients, duration_s=duration, model=model, max_tokens=tokens,
        timeout_s=60.0, api_key=api_key,
    )  # fmt: skip

    async def measure() -> dict[str, Any]:
        meter = CpuMeter()
        meter.start()
        outcomes = await run_load(spec, mix)
        seconds = meter.stop()
        report = summarize(outcomes, 10.0)
        answered = [o for o in outcomes if o.answered]
        if not answered:
            errors = report["overall"]["errors"] or report["overall"]["refusals"]
            raise RuntimeError(f"{model}: no request was answered ({errors})")
        report["cpu_s"] = {k: round(v, 3) for k, v in sorted(seconds.items())}
        report["cpu_ms_per_request"] = per_request_ms(seconds, len(answered))
        report["requests_per_s"] = round(len(answered) / duration, 2)
        # the fake's own time is its delay per token: what is left is the service's
        report["added_latency_ms"] = percentiles_ms(
            [o.latency_s - o.output_tokens * delay_s for o in answered]
        )
        report["added_ttft_ms"] = percentiles_ms(
            [o.ttft_s - delay_s for o in answered if o.ttft_s is not None]
        )
        return report

    return measure


def _rounds(
    cfg: MixserveConfig, clients: int, duration: float, rounds: int, mix: Any, delay_s: float,
    tokens: int,
) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    from loadgen import alternate

    pinned = cfg.specialists[0].name
    with tempfile.TemporaryDirectory(prefix="mixserve-bench-") as tmp:
        with _service(cfg, Path(tmp) / "state") as run:
            key = _bench_key(run) if cfg.auth.enabled else None
            with progress() as bars:
                bars.add_task("warming up (router, retriever, connections)", total=None)
                for model in (pinned, "auto"):
                    asyncio.run(_variant(run.url, model, clients, 3.0, mix, delay_s, tokens, key)())
            variants = {
                "pinned": _variant(run.url, pinned, clients, duration, mix, delay_s, tokens, key),
                "routed": _variant(run.url, "auto", clients, duration, mix, delay_s, tokens, key),
            }
            with progress() as bars:
                bars.add_task(
                    f"{rounds} round(s) x {len(variants)} variants x {duration:g} s, "
                    f"{clients} clients",
                    total=None,
                )
                return dict(asyncio.run(alternate(variants, rounds)))


def _bench_key(run: Any) -> str:
    """A key for the load, made in the run's own Redis, when the profile has auth on."""
    from orchestrator.billing import KeyStore
    from orchestrator.redis_clients import sync_client

    key, _ = KeyStore(sync_client(run.redis_url)).create("bench-ceiling")
    return key


def summary(results: dict[str, list[dict[str, Any]]], delay_s: float) -> dict[str, Any]:
    """The ceiling's figures, each the median over the rounds."""
    from loadgen.compare import median

    def med(variant: str, get: Any) -> float | None:
        values = [get(r) for r in results.get(variant, [])]
        values = [v for v in values if v is not None]
        return round(median(values), 3) if values else None

    out: dict[str, Any] = {"token_delay_ms": delay_s * 1000}
    for v in VARIANTS:
        if v not in results:
            continue
        parts = results[v][0]["cpu_ms_per_request"].keys()
        cpu = {p: med(v, lambda r, p=p: r["cpu_ms_per_request"][p]) for p in parts}
        service = cpu["service"] or 0.0
        out[f"{v}_rps"] = med(v, lambda r: r["requests_per_s"])
        out[f"{v}_capacity_rps_per_{CORES}_cores"] = (
            round(CORES * 1000 / service, 1) if service else None
        )
        out[f"{v}_cpu_ms_per_request"] = cpu
        out[f"{v}_added_latency_ms"] = {
            q: med(v, lambda r, q=q: r["added_latency_ms"][q]) for q in ("p50", "p99")
        }
        out[f"{v}_added_ttft_ms"] = {
            q: med(v, lambda r, q=q: r["added_ttft_ms"][q]) for q in ("p50", "p99")
        }
        out[f"{v}_refused"] = sum(int(r["overall"]["refused"]) for r in results[v])
        out[f"{v}_5xx"] = sum(int(r["overall"]["count_5xx"]) for r in results[v])
    return out


@bench_app.command("ceiling")
def ceiling(
    config: ConfigOpt = "cpu",
    token_delay_ms: Annotated[
        float, typer.Option(help="The fake engine's time per token (ms): a fast GPU engine.")
    ] = 0.5,
    answer_tokens: Annotated[int, typer.Option(min=1, help="Tokens in every answer.")] = 64,
    stream_batch_ms: Annotated[
        float | None,
        typer.Option(min=0, max=1000, help="Engines' stream_batch_ms (default: the profile's)."),
    ] = None,
    clients: Annotated[
        int | None,
        typer.Option(min=1, help="Closed-loop clients (default: what the gateways admit)."),
    ] = None,
    duration: Annotated[float, typer.Option(min=1, help="Seconds per round.")] = 20.0,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds of each variant, alternating.")] = 1,
    mix: MixOpt = None,
    plot: Annotated[Path | None, typer.Option(help="PNG of CPU per request by part.")] = None,
    out_file: OutOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The orchestration's ceiling: the profile with every engine on the fake, saturated
    pinned and routed; requests/s, CPU per request by part of the service (from /proc),
    and the latency it adds over the fake's own time."""
    if token_delay_ms < 0:
        fail(f"--token-delay-ms must be 0 or more, not {token_delay_ms:g}")
    cfg = fake_fleet(load_checked(config), token_delay_ms / 1000, answer_tokens, stream_batch_ms)
    if answer_tokens > cfg.gateway.max_tokens_limit:
        fail(f"--answer-tokens {answer_tokens}: above the gateway's max_tokens_limit")
    queries = _mix(mix, None)
    prepare_models(cfg)
    limit = cfg.gateway.admission_limit  # None: the gateway works out its share itself
    n = clients or (cfg.gateway.replicas * limit if limit else 32)
    delay_s = token_delay_ms / 1000
    results = _or_fail(_rounds, cfg, n, duration, rounds, queries, delay_s, answer_tokens)
    result = summary(results, delay_s)
    result["settings"] = {
        "config": str(config), "clients": n, "duration_s": duration, "rounds": rounds,
        "answer_tokens": answer_tokens, "cpus": os.cpu_count(),
        "stream_batch_ms": cfg.specialists[0].stream_batch_ms,
    }  # fmt: skip
    for name, reports in results.items():
        for i, report in enumerate(reports):
            _show(report, f"{name}, round {i + 1}")
    _show_cpu(result)
    if plot is not None:
        _plot(result, plot)
        out.print(f"wrote {plot}", highlight=False)
    if out_file is not None:
        _write(out_file, {"summary": result, "rounds": results})
    err.print(json.dumps(result))
    if as_json:
        print(json.dumps(result))


def _show_cpu(result: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title="CPU ms per answered request, by part (median of rounds)")
    table.add_column("part")
    shown = [v for v in VARIANTS if f"{v}_cpu_ms_per_request" in result]
    for v in shown:
        table.add_column(v, justify="right")
    parts = result[f"{shown[0]}_cpu_ms_per_request"].keys() if shown else []
    for p in parts:
        table.add_row(p, *(f"{result[f'{v}_cpu_ms_per_request'][p]:.2f}" for v in shown))
    err.print(table)


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [v for v in VARIANTS if f"{v}_cpu_ms_per_request" in result]
    parts = [p for p in result[f"{shown[0]}_cpu_ms_per_request"] if p not in ("service", "total")]
    fig, ax = plt.subplots(figsize=(9, 4))
    bottom = [0.0] * len(shown)
    for p in parts:
        values = [result[f"{v}_cpu_ms_per_request"][p] or 0.0 for v in shown]
        ax.bar(
            shown, values, bottom=bottom, label="loadgen (not the service)" if p == "loadgen" else p
        )
        bottom = [b + x for b, x in zip(bottom, values, strict=True)]
    ax.set_ylabel("CPU ms per answered request")
    rps = ", ".join(f"{v} {result[f'{v}_rps']:.1f} req/s" for v in shown)
    ax.set_title(f"mixserve's own CPU per request (fake engine): {rps}")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
