"""The ``mixserve`` command line: up, down, status, config, models, router.

Errors are one readable line on stderr and a non-zero exit; long steps show progress.
This module is the only place that configures logging handlers.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from orchestrator.cli.common import (
    DEFAULT_CONFIG,
    ConfigOpt,
    config_path,
    err,
    expand_multi_values,
    fail,
    load_checked,
    missing_paths,
    out,
    prepare_models,
    progress,
    write_out,
)
from orchestrator.cli.costs import costs
from orchestrator.cli.deploy import build_app, deploy, rollback
from orchestrator.cli.index import index_app
from orchestrator.cli.keys import keys_app
from orchestrator.cli.plugins import add_plugins
from orchestrator.cli.router import router_app
from orchestrator.cli.router_probe import probe
from orchestrator.config import ConfigError, load_config
from orchestrator.settings import get_settings

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="mixserve: a routed mixture of specialist models on Ray Serve.",
)
config_app = typer.Typer(no_args_is_help=True, help="Check configuration files.")
models_app = typer.Typer(no_args_is_help=True, help="Prepare model weights.")
app.add_typer(config_app, name="config")
app.add_typer(models_app, name="models")
app.add_typer(router_app, name="router")
router_app.command("probe")(probe)
app.add_typer(keys_app, name="keys")
app.add_typer(index_app, name="index")
app.command("costs")(costs)
app.add_typer(build_app, name="build")
app.command("deploy")(deploy)
app.command("rollback")(rollback)
dashboards_app = typer.Typer(help="Grafana dashboards for the Ray dashboard's Prometheus.")
app.add_typer(dashboards_app, name="dashboards")
add_plugins(app)  # `bench`, from the harness when it is installed


@dashboards_app.command("export")
def dashboards_export(
    folder: Annotated[Path, typer.Argument(help="Folder to write the dashboard JSON into.")],
) -> None:
    """Write mixserve's Grafana dashboard (load it next to the ones Ray ships)."""
    from orchestrator.telemetry.dashboards import export

    try:
        path = export(folder)
    except OSError as exc:
        fail(f"cannot write into {folder}: {exc.strerror or exc}")
    err.print(f"wrote {path}", highlight=False)


@config_app.command("validate")
def config_validate(
    config: Annotated[
        str, typer.Argument(help="Config YAML file, or a shipped profile (default: cpu).")
    ] = DEFAULT_CONFIG,
) -> None:
    """Validate a config; print every error with its YAML path."""
    file = config_path(config)
    try:
        loaded = load_config(file)
    except ConfigError as exc:
        for line in exc.errors:
            err.print(f"{exc.source}: {line}", highlight=False, soft_wrap=True, markup=False)
        raise typer.Exit(1) from None
    missing = missing_paths(loaded)
    for line in missing:
        err.print(f"{file}: {line} does not exist", highlight=False, soft_wrap=True, markup=False)
    if missing:
        raise typer.Exit(1)
    out.print(
        f"{file}: ok ({len(loaded.specialists)} specialists: "
        f"{', '.join(s.name for s in loaded.specialists)})",
        highlight=False,
        soft_wrap=True,
    )


@config_app.command("reference")
def config_reference(
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="Write it to this file (default: print it)."),
    ] = None,
) -> None:
    """The configuration reference: every key, its type, bounds, default and description,
    from the config models themselves (docs/configuration.md is this, written)."""
    from orchestrator.config.reference import reference

    write_out(reference() + "\n", out_file)


@models_app.command("prepare")
def models_prepare(
    config: ConfigOpt = DEFAULT_CONFIG,
    force: Annotated[bool, typer.Option(help="Rebuild even if present.")] = False,
) -> None:
    """Convert packaged model weights into directories the engines load (idempotent)."""
    prepare_models(load_checked(config), force)


@app.command()
def up(
    config: ConfigOpt = DEFAULT_CONFIG,
    port: Annotated[int | None, typer.Option(help="HTTP port (default from config).")] = None,
    ready_timeout: Annotated[float, typer.Option(help="Seconds to wait for readiness.")] = 1200,
) -> None:
    """Start (or join) Ray and Redis, deploy, wait until ready; Ctrl-C stops everything."""
    from orchestrator.runtime import RunState, ServiceRun
    from orchestrator.runtime.procs import alive

    cfg = load_checked(config)
    settings = get_settings()
    previous = RunState.load(settings.state_file)
    if previous is not None and alive(previous.pid):
        fail(
            f"mixserve is already running (pid {previous.pid}, {previous.url}); "
            "run 'mixserve down' first"
        )
    prepare_models(cfg)
    deployment = ServiceRun(cfg, settings, port=port, state_file=settings.state_file)

    def on_sigterm(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # the same graceful path as Ctrl-C

    signal.signal(signal.SIGTERM, on_sigterm)  # ServiceRun keeps it across ray.init
    try:
        with progress() as bars:
            task = bars.add_task("starting", total=None)
            deployment.start(
                step=lambda s: bars.update(task, description=s), ready_timeout_s=ready_timeout
            )
            bars.update(task, description="ready", total=1, completed=1)
        if deployment.dashboard_url:
            from orchestrator.runtime.run import dashboard_access

            for line in dashboard_access(deployment.dashboard_url, settings):
                out.print(line, highlight=False, markup=False)
        out.print(
            f"mixserve is ready at [bold]{deployment.url}/v1[/bold] "
            f"(run {deployment.run_id}); Ctrl-C or 'mixserve down' stops it",
            highlight=False,
        )
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # noqa: BLE001 - stop what was started, then one readable line
        _shutdown(deployment, settings.state_file)
        fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    _shutdown(deployment, settings.state_file)


def _shutdown(deployment: Any, state_file: Path) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not cut it short
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    err.print("stopping mixserve ...")
    deployment.stop()
    state_file.unlink(missing_ok=True)
    err.print("stopped")


@app.command()
def down(
    timeout: Annotated[float, typer.Option(help="Seconds to wait before killing.")] = 120,
) -> None:
    """Stop what 'mixserve up' started (by pid)."""
    from orchestrator.runtime import RunState, stop_run
    from orchestrator.runtime.procs import alive, terminate_pids

    settings = get_settings()
    state = RunState.load(settings.state_file)
    if state is None:
        fail(f"mixserve is not running (no state file at {settings.state_file})")
    if alive(state.pid):
        # SIGTERM, not SIGINT: Ray defers SIGINT while inside its calls (so a start under
        # way would ignore it); `up` keeps a SIGTERM handler that takes Ctrl-C's graceful path
        os.kill(state.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while alive(state.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if alive(state.pid):
            terminate_pids([state.pid], 5)
    leftovers = stop_run(state.run_id)
    if state.redis_pid is not None and alive(state.redis_pid):
        terminate_pids([state.redis_pid], 5)
        leftovers.append(f"{state.redis_pid} redis-server")
    settings.state_file.unlink(missing_ok=True)
    out.print(f"stopped run {state.run_id}", highlight=False)
    for line in leftovers:
        out.print(f"  also stopped leftover process {line}", highlight=False, markup=False)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    app_name: Annotated[
        str | None,
        typer.Option("--app", help="A deployed application (default: the running 'up')."),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(help="Its gateway (default: from its latest 'mixserve deploy')."),
    ] = None,
) -> None:
    """Readiness of every component; replicas per node, versions and queues."""
    from orchestrator.cli.deploy import cluster_view, release_url
    from orchestrator.runtime import RunState, run_status

    settings = get_settings()
    state = RunState.load(settings.state_file)
    if app_name is None and state is None:
        fail("mixserve is not running (no 'mixserve up'); name a deployed one with --app")
    if app_name is None and state is not None:
        info = run_status(state)
        name, url = state.config, state.url
    else:
        name = app_name or "mixserve"
        deployed_url, release = release_url(name, settings)
        url = url or deployed_url
        info = {"app": name, "url": url, "release": release, **readiness(url)}
    dashboard = state.dashboard_url if state is not None and app_name is None else None
    info.update(cluster_view(name, url, settings, dashboard))
    if as_json:
        out.print_json(json.dumps(info))
    else:
        _print_status(info)
    if not info["ready"]:
        raise typer.Exit(1)


def readiness(url: str) -> dict[str, Any]:
    import httpx

    try:
        resp = httpx.get(f"{url}/readyz", timeout=10)
        return {"ready": resp.status_code == 200, "components": resp.json().get("components", {})}
    except (httpx.HTTPError, ValueError) as exc:
        return {"ready": False, "error": str(exc)}


def _print_status(info: dict[str, Any]) -> None:
    title = f"mixserve {info['url']}"
    if info.get("run_id"):
        title += f" (run {info['run_id']}, pid {info['pid']})"
    elif info.get("release"):
        title += f" (release {info['release']})"
    table = Table(title=title)
    table.add_column("component")
    table.add_column("state")
    for name, value in info.get("components", {}).items():
        table.add_row(name, value)
    out.print(table)
    deployments = info.get("deployments")
    _print_rows(
        "deployments",
        deployments,
        ("application", "deployment", "status", "replicas", "by node"),
        lambda d: (
            d["application"],
            d["deployment"],
            d["status"],
            f"{sum(d['replicas_by_node'].values())}/{d['target_replicas']}",
            ", ".join(f"{n}: {c}" for n, c in d["replicas_by_node"].items()),
        ),
    )
    _print_rows(
        "specialists",
        info.get("specialists"),
        ("specialist", "version", "running", "queue (running/waiting)", "in flight"),
        lambda sp: (
            sp["name"],
            str(sp["version"]),
            str(sp["running_version"]),
            f"{sp['queue']['running']}/{sp['queue']['waiting']}",
            str(sp["in_flight"]),
        ),
    )
    out.print("ready" if info["ready"] else f"not ready {info.get('error', '')}")


def _print_rows(
    title: str, rows: Any, columns: tuple[str, ...], row: Callable[[Any], tuple[str, ...]]
) -> None:
    """A table of ``rows``, or the one line saying why there are none (a string)."""
    if isinstance(rows, list):
        table = Table(title=title)
        for col in columns:
            table.add_column(col)
        for r in rows:
            table.add_row(*row(r))
        out.print(table)
    elif rows:
        err.print(f"{title}: {rows}", highlight=False, markup=False)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app(args=expand_multi_values(sys.argv[1:]), prog_name="mixserve")
    except KeyboardInterrupt:
        sys.exit(130)
