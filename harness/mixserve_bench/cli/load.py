"""``mixserve bench``: load a running endpoint (mixserve's, or any OpenAI-compatible one
such as ``vllm serve``) and report throughput, goodput, TTFT, latency, refusals and
errors, per prompt group, per specialist and overall (the ``loadgen`` package).

Loads only this machine unless ``--allow-remote`` is given; every load is bounded by
``--duration`` and each request by ``--timeout``.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from orchestrator.cli.common import err, fail, out, progress
from orchestrator.settings import get_settings

bench_app = typer.Typer(no_args_is_help=True, help="Load an endpoint and report how it holds.")
# used when no --mix is given: one question for each kind of specialist
BUILTIN_MIX = {
    "code": ["Write a Python function that reverses a list."],
    "math": ["What is 17 times 23?"],
    "general": ["What is the capital of France?", "Explain what a hash table is."],
}
UrlOpt = Annotated[str | None, typer.Option(help="Endpoint (default: the running `up`'s).")]
MixOpt = Annotated[
    list[str] | None,
    typer.Option("--mix", help="JSONL prompt files (score tables): PATH or GROUP=PATH, several."),
]
SkewOpt = Annotated[
    str | None, typer.Option(help="GROUP=SHARE: that share of the requests from one group.")
]
ModelOpt = Annotated[str, typer.Option(help="`model` of every request.")]
MaxTokensOpt = Annotated[int, typer.Option(min=1, help="`max_tokens` of every request.")]
TimeoutOpt = Annotated[float, typer.Option(help="Seconds a client waits per request.")]
SloOpt = Annotated[float, typer.Option("--slo-s", help="Latency SLO of goodput (s).")]
ApiKeyOpt = Annotated[str | None, typer.Option(help="Bearer key, when auth is on.")]
RemoteOpt = Annotated[bool, typer.Option(help="Allow an endpoint off this machine.")]


def _url(url: str | None) -> str:
    if url:
        return url
    from orchestrator.runtime import RunState

    state = RunState.load(get_settings().state_file)
    return state.url if state else "http://127.0.0.1:8000"


def _mix(files: list[str] | None, skew: str | None) -> Any:
    from loadgen.mix import MixError, QueryMix

    try:
        mix = QueryMix.from_files(files) if files else QueryMix(BUILTIN_MIX)
        if skew:
            group, sep, share = skew.partition("=")
            if not sep:
                raise MixError(f"--skew {skew!r}: expected GROUP=SHARE")
            try:
                value = float(share)
            except ValueError:
                raise MixError(f"--skew {skew!r}: {share!r} is not a number") from None
            mix = mix.skewed(group, value)
    except MixError as exc:
        fail(str(exc))
    return mix


SIMD = re.compile(r"^(avx2|avx512\w*|amx\w*|fma|f16c)$")


def machine() -> dict[str, Any]:
    """What the figures were measured on: the CPU's model, its logical CPUs and the
    vector instruction sets it has (these machines differ: AVX2 only, or AVX-512 with
    BF16, VNNI and AMX), beside every report."""
    from router_model.precision import cpu_flags

    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    names = [v for k, _, v in (ln.partition(":") for ln in text.splitlines())
             if k.strip() == "model name"]  # fmt: skip
    model = names[0].strip() if names else platform.processor() or "unknown"
    flags = {f for f in cpu_flags(text) if SIMD.match(f)}
    return {"cpu": model, "logical_cpus": os.cpu_count(), "simd": sorted(flags)}


def _write(path: Path, data: Any) -> None:
    """``data`` with the machine it was measured on, written atomically."""
    data = {**data, "machine": machine()} if isinstance(data, dict) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; a report is for anyone to read
    os.replace(tmp, path)


def _show(report: dict[str, Any], title: str) -> None:
    table = Table(title=title)
    for column in ("", "requests", "answered", "refused", "5xx", "tok/s", "goodput",
                   "TTFT p50/p99 ms", "latency p50/p99 ms"):  # fmt: skip
        table.add_column(column)
    rows = [("overall", report["overall"])]
    rows += [(f"group {g}", b) for g, b in report["by_group"].items()]
    rows += [(f"specialist {s}", b) for s, b in report["by_specialist"].items()]
    for name, b in rows:
        table.add_row(
            name,
            str(b["requests"]),
            str(b["answered"]),
            str(b["refused"]),
            str(b["count_5xx"]),
            f"{b['output_tokens_per_s']:.1f}",
            f"{b['goodput_share']:.0%}" if b["goodput_share"] is not None else "-",
            f"{b['ttft_ms']['p50']} / {b['ttft_ms']['p99']}",
            f"{b['latency_ms']['p50']} / {b['latency_ms']['p99']}",
        )
    err.print(table)


def _measure(spec: Any, mix: Any, slo_s: float, allow_remote: bool) -> dict[str, Any]:
    from loadgen import run_load, summarize

    try:
        spec.check(allow_remote)
    except ValueError as exc:
        fail(str(exc))
    with progress() as bars:
        load = f"{spec.clients} clients" if spec.mode == "closed" else f"{spec.rate_per_s}/s"
        bars.add_task(f"loading {spec.url} ({load}, {spec.duration_s:g} s)", total=None)
        outcomes = asyncio.run(run_load(spec, mix, allow_remote))
    report = summarize(outcomes, slo_s)
    report["load"] = {k: v for k, v in vars(spec).items() if k != "api_key"}
    return report


@bench_app.command("run")
def run(
    url: UrlOpt = None,
    mode: Annotated[str, typer.Option(help="closed (clients) or open (Poisson rate).")] = "closed",
    clients: Annotated[int, typer.Option(min=1, help="Closed-loop clients.")] = 16,
    rate: Annotated[float, typer.Option(help="Open-loop arrivals per second.")] = 0.0,
    duration: Annotated[float, typer.Option(help="Seconds of load.")] = 30.0,
    model: ModelOpt = "auto",
    max_tokens: MaxTokensOpt = 64,
    timeout: TimeoutOpt = 60.0,
    slo: SloOpt = 10.0,
    mix: MixOpt = None,
    skew: SkewOpt = None,
    api_key: ApiKeyOpt = None,
    seed: Annotated[int, typer.Option(help="Seed of prompts and arrivals.")] = 0,
    allow_remote: RemoteOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    out_file: Annotated[Path | None, typer.Option("--out", help="Write the JSON report.")] = None,
) -> None:
    """One load, closed- or open-loop, and its report."""
    from loadgen import LoadSpec

    if mode not in ("closed", "open"):
        fail(f"--mode must be closed or open, not {mode!r}")
    spec = LoadSpec(
        url=_url(url),
        mode="closed" if mode == "closed" else "open",
        clients=clients,
        rate_per_s=rate,
        duration_s=duration,
        model=model,
        max_tokens=max_tokens,
        timeout_s=timeout,
        seed=seed,
        api_key=api_key,
    )
    report = _measure(spec, _mix(mix, skew), slo, allow_remote)
    _show(report, f"{spec.url}: {mode} loop, {duration:g} s")
    if out_file is not None:
        _write(out_file, report)
    if as_json:
        print(json.dumps(report))


@bench_app.command("sweep")
def sweep(
    url: UrlOpt = None,
    clients: Annotated[
        list[int] | None, typer.Option(help="Closed-loop client counts, several.")
    ] = None,
    rates: Annotated[list[float] | None, typer.Option(help="Open-loop rates, several.")] = None,
    duration: Annotated[float, typer.Option(help="Seconds of load per step.")] = 20.0,
    model: ModelOpt = "auto",
    max_tokens: MaxTokensOpt = 64,
    timeout: TimeoutOpt = 60.0,
    slo: SloOpt = 10.0,
    mix: MixOpt = None,
    skew: SkewOpt = None,
    api_key: ApiKeyOpt = None,
    allow_remote: RemoteOpt = False,
    plot: Annotated[Path | None, typer.Option(help="PNG of latency and goodput.")] = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="Write the JSON reports.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the reports as JSON.")] = False,
) -> None:
    """Loads of rising size (clients or rates), one report each, and their plot."""
    from loadgen import LoadSpec, plot_sweep

    if bool(clients) == bool(rates):
        fail("give --clients (closed loop) or --rates (open loop), one of them")
    queries = _mix(mix, skew)
    steps: list[tuple[float, dict[str, Any]]] = []
    for step in clients or rates or []:
        spec = LoadSpec(
            url=_url(url),
            mode="closed" if clients else "open",
            clients=int(step) if clients else 1,
            rate_per_s=float(step) if rates else 0.0,
            duration_s=duration,
            model=model,
            max_tokens=max_tokens,
            timeout_s=timeout,
            api_key=api_key,
        )
        steps.append((float(step), _measure(spec, queries, slo, allow_remote)))
    reports = [{"offered": load, **report} for load, report in steps]
    for report in reports:
        _show(report, f"offered {report['offered']:g} ({'clients' if clients else 'per s'})")
    if plot is not None:
        what = "clients" if clients else "arrivals/s"
        plot_sweep(steps, plot, f"{_url(url)}: load against {what}")
        out.print(f"wrote {plot}", highlight=False)
    if out_file is not None:
        _write(out_file, reports)
    if as_json:
        print(json.dumps(reports))
