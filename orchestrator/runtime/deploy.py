"""Deploying to a running Ray cluster through its dashboard's REST API (what ``serve
deploy -a ADDRESS`` does, Ray's auth token included when the cluster has one), waiting
for the rollout, and reading back what runs where.

A rolling update replaces the replicas of only the applications whose arguments or
options changed; each engine runs as its own application, so a changed specialist rolls
over its own engine (new replicas beside the old with ``rollout_surge_percent``), and
the main application only when the gateway's, router's or retriever's settings changed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from orchestrator.settings import Settings, get_settings

Step = Callable[[str], None]


class DeployError(RuntimeError):
    """The cluster refused the Serve config, or the rollout failed or timed out."""


def ray_token(settings: Settings) -> str | None:
    """The cluster's auth token (``ray get-auth-token``'s file), unless auth is off."""
    if (settings.ray_auth_mode or "").lower() == "disabled" or not settings.ray_auth_token_path:
        return None
    try:
        return settings.ray_auth_token_path.read_text().strip() or None
    except OSError:
        return None


def _auth_headers() -> dict[str, str]:
    """The cluster's token as a header (Ray's own clients send it only in a process that
    set RAY_AUTH_MODE=token itself)."""
    token = ray_token(get_settings())
    return {"Authorization": f"Bearer {token}"} if token else {}


def _client(address: str) -> Any:
    """Ray's Serve REST client."""
    from ray.dashboard.modules.serve.sdk import ServeSubmissionClient

    return ServeSubmissionClient(address, headers=_auth_headers() or None)


def live_nodes(address: str) -> list[dict[str, Any]]:
    """The cluster's nodes, from the dashboard's state API (no driver needed)."""
    try:
        resp = httpx.get(f"{address}/api/v0/nodes", headers=_auth_headers(), timeout=30)
        resp.raise_for_status()
        return list(resp.json()["data"]["result"]["result"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise DeployError(f"cannot list the nodes at {address}: {_first_line(exc)}") from None


def serve_details(address: str) -> dict[str, Any]:
    """Serve's view of the cluster: applications, deployments, replicas and their nodes."""
    try:
        return dict(_client(address).get_serve_details())
    except Exception as exc:  # noqa: BLE001 - the SDK raises bare RuntimeErrors
        raise DeployError(f"cannot read Serve's state from {address}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _settled(details: dict[str, Any], names: list[str], since: float) -> tuple[bool, str]:
    """Whether every application in ``names`` was deployed after ``since`` and runs with
    every deployment healthy (its rolling update done); else what it is waiting on."""
    apps = details.get("applications") or {}
    for name in names:
        app = apps.get(name)
        if app is None:
            return False, f"{name}: not yet known"
        status = str(app.get("status"))
        if status == "DEPLOY_FAILED":
            raise DeployError(
                f"{name}: deploy failed: {_first_line(Exception(app.get('message')))}"
            )
        if float(app.get("last_deployed_time_s") or 0) + 1 < since:
            return False, f"{name}: submitted"
        if status != "RUNNING":
            return False, f"{name}: {status.lower()}"
        for dname, d in (app.get("deployments") or {}).items():
            if str(d.get("status")) != "HEALTHY":
                states: dict[str, int] = {}
                for r in d.get("replicas") or []:
                    states[str(r.get("state")).lower()] = (
                        states.get(str(r.get("state")).lower(), 0) + 1
                    )
                shown = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
                return False, f"{name}/{dname}: {str(d.get('status')).lower()} (replicas: {shown})"
            running = [r for r in d.get("replicas") or [] if r.get("state") == "RUNNING"]
            if len(running) < int(d.get("target_num_replicas") or 0):
                return False, f"{name}/{dname}: {len(running)} replicas running"
    return True, "running"


def apply(
    serve_config: dict[str, Any],
    address: str,
    *,
    timeout_s: float,
    step: Step | None = None,
    poll_s: float = 1.0,
) -> None:
    """Submit ``serve_config`` and wait until every application in it runs healthy."""
    report = step or (lambda _s: None)
    names = [a["name"] for a in serve_config["applications"]]
    submitted = time.time()
    try:
        _client(address).deploy_applications(serve_config)
    except Exception as exc:  # noqa: BLE001 - the SDK raises bare RuntimeErrors
        raise DeployError(
            f"the cluster at {address} refused the config: {_first_line(exc)}"
        ) from None
    deadline = time.monotonic() + timeout_s
    last = "submitted"
    while time.monotonic() < deadline:
        done, last = _settled(serve_details(address), names, submitted)
        report(last)
        if done:
            return
        time.sleep(poll_s)
    raise DeployError(
        f"not settled after {timeout_s:.0f} s: {last}; the old replicas still serve. New "
        "replicas waiting for resources (pending) need room beside the old ones: add "
        "nodes, or lower the specialist's rollout_surge_percent"
    )


def wait_ready(url: str, timeout_s: float) -> None:
    """Until the gateway's ``/readyz`` answers 200 (router, retriever, every engine)."""
    from orchestrator.runtime.run import wait_until_ready

    try:
        wait_until_ready(url, timeout_s)
    except TimeoutError as exc:
        raise DeployError(str(exc)) from None


def cluster_status(details: dict[str, Any], app_names: list[str]) -> list[dict[str, Any]]:
    """One row per deployment of ``app_names``: status, replicas per node."""
    rows = []
    apps = details.get("applications") or {}
    for name in app_names:
        app = apps.get(name) or {}
        for dname, d in (app.get("deployments") or {}).items():
            nodes: dict[str, int] = {}
            for r in d.get("replicas") or []:
                if r.get("state") == "RUNNING":
                    # by node id (several nodes may share an address, as on one machine)
                    node = f"{r.get('node_ip') or '?'} ({str(r.get('node_id') or '?')[:8]})"
                    nodes[node] = nodes.get(node, 0) + 1
            rows.append(
                {
                    "application": name,
                    "deployment": dname,
                    "status": str(d.get("status", "?")),
                    "target_replicas": int(d.get("target_num_replicas") or 0),
                    "replicas_by_node": nodes,
                }
            )
    return rows


def specialists_status(url: str, api_key: str | None = None) -> list[dict[str, Any]] | str:
    """Each specialist's configured and running version, node, queue and counters, from
    the gateway's ``/v1/specialists``; a one-line reason when it cannot be read."""
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        resp = httpx.get(f"{url}/v1/specialists", headers=headers, timeout=15)
    except httpx.HTTPError as exc:
        return f"gateway unreachable: {_first_line(exc)}"
    if resp.status_code == 401:
        return "the gateway needs an API key: set MIXSERVE_API_KEY"
    if resp.status_code != 200:
        return f"gateway answered {resp.status_code}"
    rows = []
    for s in resp.json().get("data", []):
        stats = s.get("stats") or {}
        load = stats.get("engine_load") or {}
        rows.append(
            {
                "name": s["name"],
                "deployment": s["deployment"],
                "version": s.get("version"),
                "running_version": stats.get("version"),
                "node": stats.get("node"),
                "queue": {"running": load.get("running"), "waiting": load.get("waiting")},
                "in_flight": stats.get("in_flight"),
            }
        )
    return rows
