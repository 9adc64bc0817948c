"""Cluster commands: ``build serve-config``, ``deploy``, ``rollback``.

``build serve-config`` writes the Ray Serve config ``serve deploy`` runs; ``deploy``
checks it against the cluster (resources every deployment needs, models prepared),
applies it through the dashboard's REST API and waits for the rollout, recording a
release; ``rollback`` applies the release before the current one. Checks fail before
anything is deployed, one line per problem with its YAML path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from orchestrator.cli.common import (
    DEFAULT_CONFIG,
    ConfigOpt,
    config_path,
    err,
    fail,
    load_checked,
    out,
    progress,
    write_out,
)
from orchestrator.config import MixserveConfig
from orchestrator.settings import Settings, get_settings

build_app = typer.Typer(no_args_is_help=True, help="Build what a Ray cluster runs.")

RedisOpt = Annotated[
    str | None,
    typer.Option("--redis-url", help="The Redis every gateway uses (default: REDIS_URL)."),
]
ClusterOpt = Annotated[
    Path | None,
    typer.Option(
        "--cluster",
        help="A Ray cluster launcher config (cluster.yaml): check resources against its "
        "node types (default for deploy: the running cluster's nodes).",
    ),
]
AddressOpt = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="The Ray dashboard (default: RAY_DASHBOARD_ADDRESS or http://127.0.0.1:8265).",
    ),
]
TimeoutOpt = Annotated[float, typer.Option(help="Seconds to wait for the rollout.")]


def run_id_of(config: MixserveConfig) -> str:
    """A deployed application's run id: stable across deploys (the run marker is part of
    every replica's environment, which a new id would change, restarting them all)."""
    return f"deploy-{config.name}"


def _redis(value: str | None, settings: Settings) -> str:
    url = value or settings.redis_url
    if not url:
        fail("a Serve config needs the Redis every gateway uses: set REDIS_URL or --redis-url", 2)
    return url


def _check(
    config: MixserveConfig,
    source: Path,
    settings: Settings,
    cluster: Path | None,
    address: str | None = None,
) -> None:
    """Models prepared and resources available, before anything is deployed: against
    ``cluster``'s node types, else the nodes of the cluster at ``address`` (required by
    a deploy), else of the dashboard the settings name, when it answers."""
    from orchestrator.runtime.deploy import DeployError, live_nodes
    from orchestrator.runtime.placement import (
        ClusterFileError,
        model_problems,
        node_types_of_cluster_file,
        node_types_of_live_cluster,
        resource_problems,
    )

    problems = model_problems(config, settings.cache_dir)
    if cluster is not None:
        try:
            types = node_types_of_cluster_file(cluster)
        except ClusterFileError as exc:
            fail(str(exc), 2)
        problems += resource_problems(config, types)
    else:
        try:
            nodes = live_nodes(address or settings.dashboard_address)
        except DeployError as exc:
            if address is not None:
                fail(str(exc))
            nodes = []  # no cluster to check against: building needs none
        if nodes:
            problems += resource_problems(config, node_types_of_live_cluster(nodes))
    if problems:
        for line in problems:
            err.print(f"{source}: {line}", highlight=False, soft_wrap=True, markup=False)
        fail(f"{len(problems)} problem(s): nothing was deployed", 2)


def _serve_config(
    config: MixserveConfig, settings: Settings, redis_url: str, port: int | None
) -> dict[str, Any]:
    from orchestrator.runtime.serve_config import serve_config
    from orchestrator.telemetry import TraceOptions

    return serve_config(
        config,
        cache_dir=settings.cache_dir,
        redis_url=redis_url,
        run_id=run_id_of(config),
        tracing=TraceOptions.of(config, settings, redis_url),
        port=port,
    )


def _dump(doc: dict[str, Any]) -> str:
    head = "# Ray Serve config written by `mixserve build serve-config`; run: serve deploy FILE\n"
    return head + yaml.safe_dump(doc, sort_keys=False, width=100)


@build_app.command("serve-config")
def build_serve_config(
    config: ConfigOpt = DEFAULT_CONFIG,
    redis_url: RedisOpt = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (default from config).")] = None,
    cluster: ClusterOpt = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write here (atomically) instead of stdout.")
    ] = None,
) -> None:
    """Write the Ray Serve config for CONFIG (`serve deploy` runs it)."""
    settings = get_settings()
    cfg = load_checked(config)
    url = _redis(redis_url, settings)
    _check(cfg, config_path(config), settings, cluster)
    write_out(_dump(_serve_config(cfg, settings, url, port)), out_file)


def _apply(doc: dict[str, Any], address: str, timeout: float, url: str) -> None:
    from orchestrator.runtime.deploy import DeployError, apply, wait_ready

    try:
        with progress() as bars:
            task = bars.add_task("submitting", total=None)
            apply(doc, address, timeout_s=timeout, step=lambda s: bars.update(task, description=s))
            bars.update(task, description="waiting until ready")
            wait_ready(url, timeout)
            bars.update(task, description="ready", total=1, completed=1)
    except DeployError as exc:
        fail(str(exc))


def _gateway_url(doc: dict[str, Any]) -> str:
    http = doc.get("http_options") or {}
    host = str(http.get("host") or "127.0.0.1")
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{http.get('port', 8000)}"


def deploy(
    config: ConfigOpt = DEFAULT_CONFIG,
    redis_url: RedisOpt = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (default from config).")] = None,
    cluster: ClusterOpt = None,
    address: AddressOpt = None,
    timeout: TimeoutOpt = 1200,
) -> None:
    """Build the Serve config, check it against the cluster, apply it and wait: changed
    specialists roll over to their new version with no failed request."""
    from orchestrator.runtime.releases import ReleaseError, Releases
    from orchestrator.versions import config_versions

    settings = get_settings()
    cfg = load_checked(config)
    address = address or settings.dashboard_address
    _check(cfg, config_path(config), settings, cluster, address)
    doc = _serve_config(cfg, settings, _redis(redis_url, settings), port)
    releases = Releases(settings.state_dir, cfg.name)
    try:
        before = releases.latest()
    except ReleaseError as exc:
        fail(str(exc))
    versions = config_versions(cfg)
    _apply(doc, address, timeout, _gateway_url(doc))
    release = releases.record(versions, doc, str(config_path(config)))
    changed = release.changed_from(before)
    out.print(f"release {release.number} of {cfg.name} is running at {_gateway_url(doc)}")
    for name, (old, new) in changed.items():
        out.print(f"  {name}: {old or '-'} -> {new or '-'}", highlight=False)


def rollback(
    app_name: Annotated[str, typer.Option("--app", help="The application's name.")] = "mixserve",
    to: Annotated[
        int | None, typer.Option(help="Release to return to (default: the one before).")
    ] = None,
    address: AddressOpt = None,
    timeout: TimeoutOpt = 1200,
) -> None:
    """Apply an earlier release again (the one before the current by default)."""
    from orchestrator.runtime.releases import ReleaseError, Releases

    settings = get_settings()
    releases = Releases(settings.state_dir, app_name)
    try:
        current = releases.latest()
        if current is None:
            fail(f"no releases of {app_name} in {releases.folder}: nothing to roll back")
        numbers = [n for n in releases.numbers() if n < current.number]
        target_number = to if to is not None else (numbers[-1] if numbers else None)
        if target_number is None:
            fail(f"release {current.number} is the first of {app_name}: nothing to roll back to")
        if target_number == current.number:
            fail(f"release {target_number} is the one running")
        target = releases.get(target_number)
    except ReleaseError as exc:
        fail(str(exc))
    _apply(target.serve_config, address or settings.dashboard_address, timeout,
           _gateway_url(target.serve_config))  # fmt: skip
    release = releases.record(target.versions, target.serve_config, target.source, target.number)
    out.print(f"release {release.number} of {app_name} (release {target.number} again) is running")
    for name, (old, new) in release.changed_from(current).items():
        out.print(f"  {name}: {old or '-'} -> {new or '-'}", highlight=False)


def cluster_view(
    app_name: str, url: str, settings: Settings, dashboard: str | None = None
) -> dict[str, Any]:
    """The application's deployments (its engines' applications too) with replicas per
    node, from the dashboard, and its specialists with versions and queues, from the
    gateway, for ``mixserve status``."""
    from orchestrator.runtime.deploy import (
        DeployError,
        cluster_status,
        serve_details,
        specialists_status,
    )

    view: dict[str, Any] = {}
    try:
        details = serve_details(dashboard or settings.dashboard_address)
        names = [n for n in details.get("applications") or {} if n.startswith(f"{app_name}-")]
        view["deployments"] = cluster_status(details, [*sorted(names), app_name])
    except DeployError as exc:
        view["deployments"] = str(exc)
    view["specialists"] = specialists_status(url, settings.api_key)
    return view


def release_url(app_name: str, settings: Settings) -> tuple[str, int | None]:
    """The gateway URL and release number of the latest ``mixserve deploy`` of the app."""
    from orchestrator.runtime.releases import ReleaseError, Releases

    try:
        latest = Releases(settings.state_dir, app_name).latest()
    except ReleaseError:
        latest = None
    if latest is None:
        return "http://127.0.0.1:8000", None
    return _gateway_url(latest.serve_config), latest.number
