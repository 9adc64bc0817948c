"""Build the Ray Serve application from a config: router, retriever, specialists, gateway.

Every deployment gets explicit concurrency limits and queue bounds (Serve's defaults
collapse under load), and every replica's environment carries the run id, so the
processes a run starts (vLLM's engine processes included) can be found and stopped.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

from ray import serve
from ray.serve import Application, Deployment

from orchestrator.config import MixserveConfig, ModelSource, Resources
from orchestrator.gateway import Gateway
from orchestrator.procs import MARKER_VAR
from orchestrator.servers import RetrieverServer, RouterServer, SpecialistServer
from orchestrator.tracing import TraceOptions
from router_model import relative_costs

BASE_ENV = {
    "VLLM_CONFIGURE_LOGGING": "0",  # vLLM's dictConfig closes Serve's log handlers
    "TOKENIZERS_PARALLELISM": "false",
}
# Weights prepared from a package are local: never let a library reach for a hub then.
# Models named by id (the GPU profile) may be resolved from a hub or mirror by the engine.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _model_env(source: ModelSource) -> dict[str, str]:
    return dict(OFFLINE_ENV) if source.package is not None else {}


def model_path(source: ModelSource, cache_dir: Path) -> str:
    """The directory (or id) an engine loads for ``source``."""
    from specialists.weights import model_dir_for

    if source.package is not None:
        return str(model_dir_for(source.package, cache_dir))
    assert source.path is not None  # guaranteed by ModelSource's validator
    return source.path


def _deployment(cls: type) -> Deployment:
    return cast(Deployment, serve.deployment(cls))


def _actor_options(resources: Resources, env: dict[str, str]) -> dict[str, Any]:
    options: dict[str, Any] = {
        "num_cpus": resources.num_cpus,
        "num_gpus": resources.num_gpus,
        "runtime_env": {"env_vars": env},
    }
    if resources.memory_gb is not None:
        options["memory"] = int(resources.memory_gb * 1024**3)
    if resources.custom:
        options["resources"] = dict(resources.custom)
    return options


def build_app(
    config: MixserveConfig,
    *,
    cache_dir: Path,
    redis_url: str | None,
    run_id: str,
    tracing: TraceOptions | None = None,
) -> Application:
    """The Serve application. ``tracing`` reaches every deployment through its
    arguments (replicas on other nodes need not share this process's environment)."""
    env = {**BASE_ENV, MARKER_VAR: run_id}
    trace = (tracing or TraceOptions(enabled=False)).as_dict()
    r = config.router
    relative = relative_costs(
        [(s.price.usd_per_mtok_in, s.price.usd_per_mtok_out) for s in config.specialists],
        r.expected_input_tokens,
        r.expected_output_tokens,
    )
    profiles = [
        {
            "name": s.name,
            "description": s.description,
            "examples": list(s.examples),
            "relative_cost": float(cost),
        }
        for s, cost in zip(config.specialists, relative, strict=True)
    ]
    router = (
        _deployment(RouterServer)
        .options(
            name="router",
            num_replicas=r.replicas,
            max_ongoing_requests=64,
            max_queued_requests=512,
            ray_actor_options=_actor_options(r.resources, {**env, **_model_env(r.model)}),
        )
        .bind(
            model_path(r.model, cache_dir),
            profiles,
            {
                "layer": r.layer,
                "max_query_tokens": r.max_query_tokens,
                "dtype": r.dtype,
                "compile": r.compile,
                "threads": r.threads,
                "head": r.head,
                "head_params": dict(r.head_params),
                "artifact": str(config.resolve(r.artifact)) if r.artifact else None,
                "models": dict(r.models),
                "tradeoff": r.quality_cost_tradeoff,
                "fallback": r.fallback,
                "min_confidence": r.min_confidence,
            },
            trace,
        )
    )
    collections = []
    for c in config.retrieval.collections:
        paths = [config.resolve(p).resolve() for p in c.paths]
        root = os.path.commonpath([p if p.is_dir() else p.parent for p in paths])
        collections.append(
            {
                "name": c.name,
                "paths": [str(p) for p in paths],
                "root": root,
                "chunk_chars": c.chunk_chars,
                "chunk_overlap": c.chunk_overlap,
            }
        )
    retriever = (
        _deployment(RetrieverServer)
        .options(
            name="retriever",
            num_replicas=1,
            max_ongoing_requests=64,
            max_queued_requests=512,
            ray_actor_options=_actor_options(config.retrieval.resources, {**env, **OFFLINE_ENV}),
        )
        .bind(
            collections,
            config.retrieval.embedding_package,
            str(cache_dir / "indexes" / config.name),
            trace,
        )
    )
    specialists = {}
    for s in config.specialists:
        specialists[s.name] = (
            _deployment(SpecialistServer)
            .options(
                name=f"specialist-{s.name}",
                num_replicas=s.replicas,
                max_ongoing_requests=s.max_ongoing_requests,
                max_queued_requests=s.max_queued_requests,
                graceful_shutdown_timeout_s=30,
                health_check_period_s=10,
                health_check_timeout_s=30,
                ray_actor_options=_actor_options(
                    s.resources, {**env, **_model_env(s.model), **s.engine_env}
                ),
            )
            .bind(
                s.name,
                s.engine,
                model_path(s.model, cache_dir),
                s.prompt_format,
                s.system_prompt,
                s.max_model_len,
                dict(s.engine_kwargs),
                s.start_timeout_s,
                trace,
            )
        )
    g = config.gateway
    return (
        _deployment(Gateway)
        .options(
            name="gateway",
            num_replicas=g.replicas,
            max_ongoing_requests=g.max_ongoing_requests,
            max_queued_requests=g.max_queued_requests,
            ray_actor_options=_actor_options(Resources(num_cpus=0.1), env),
        )
        .bind(
            config.model_dump(mode="json"),
            router,
            retriever,
            specialists,
            redis_url,
            # settlements made while Redis is down wait here (per node, drained by any
            # gateway of the node once Redis is back)
            str(cache_dir / "spool" / config.name),
            trace,
        )
    )
