"""A Ray Serve config for a mixserve config: what ``serve deploy serve.yaml`` runs.

One application per engine deployment and the main one (gateway, router, retriever),
each built on the cluster by ``orchestrator.app:serve_app`` from its ``args``, with a
``deployments`` list stating every deployment's replicas, bounds, resources, autoscaling
and request router, as ``serve build`` writes them (edit them there and ``serve deploy``
applies the change; replica counts and bounds without restarting a replica). Checked
against Serve's own schema before it is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.config import MixserveConfig
from orchestrator.telemetry import TraceOptions

IMPORT_PATH = "orchestrator.app:serve_app"


def _deployments(app: Any, name: str) -> list[dict[str, Any]]:
    """Each deployment's options as ``serve build`` writes them (Serve's own schema)."""
    # `serve build`'s own two steps (``ray.serve.scripts.build``)
    from ray.serve.deployment import deployment_to_schema

    from orchestrator.ray_compat import build_app

    built = build_app(app, name=name)
    return [
        deployment_to_schema(d).model_dump(mode="json", exclude_unset=True)
        for d in built.deployments
    ]


def serve_config(
    config: MixserveConfig,
    *,
    cache_dir: Path,
    redis_url: str | None,
    run_id: str,
    tracing: TraceOptions | None = None,
    port: int | None = None,
) -> dict[str, Any]:
    """The Serve config (a dict to write as YAML), validated by ``ServeDeploySchema``."""
    from ray.serve.schema import ServeDeploySchema

    from orchestrator.app import serve_app, serve_args

    args = serve_args(
        config, cache_dir=cache_dir, redis_url=redis_url, run_id=run_id, tracing=tracing
    )
    applications = []
    for name in args:  # each built from its args, as the cluster will build it
        app = serve_app(args[name])
        entry: dict[str, Any] = {"name": name, "import_path": IMPORT_PATH}
        if name == config.name:
            entry["route_prefix"] = "/"
        else:  # engines answer the gateway only: no HTTP route of their own
            entry["route_prefix"] = None
        entry["args"] = args[name]
        entry["deployments"] = _deployments(app, name)
        applications.append(entry)
    doc = {
        "proxy_location": config.gateway.proxy_location,
        "http_options": {"host": config.gateway.host, "port": port or config.gateway.port},
        "applications": applications,
    }
    ServeDeploySchema.model_validate(doc)
    return doc
