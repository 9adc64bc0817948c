"""Build the Ray Serve applications from a config: one per specialist engine (one
deployment per entry of `engines:`, or per specialist with an engine of its own), and the
main one with the gateway, router and a retriever per collection.

Each deployment is bound its own typed config object (``RouterConfig``,
``RetrievalConfig``, ``SpecialistConfig``, the whole ``MixserveConfig`` for the gateway)
with paths resolved here, where the config file's folder is known. Every deployment gets
explicit concurrency limits and queue bounds (Serve's defaults collapse under load), and
every replica's environment carries the run id, so the processes a run starts (vLLM's
engine processes included) can be found and stopped.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve import Application
from ray.serve import Deployment as ServeDeployment
from ray.serve.config import BackpressureConfig, RequestRouterConfig

from orchestrator.config import MixserveConfig, ModelSource, Resources, SpecialistConfig
from orchestrator.deployments import EngineFront, RetrieverServer, RouterServer, SpecialistServer
from orchestrator.retrieval_setup import collection_specs
from orchestrator.serving import EngineAddress, Gateway
from orchestrator.settings import RUN_MARKER_VAR, get_settings
from orchestrator.telemetry import TraceOptions
from orchestrator.versions import config_versions, specialist_versions

BASE_ENV = {
    "VLLM_CONFIGURE_LOGGING": "0",  # vLLM's dictConfig closes Serve's log handlers
    "TOKENIZERS_PARALLELISM": "false",
}
# Weights prepared from a package are local: never let a library reach for a hub then.
# Models named by id (the GPU profile) may be resolved from a hub or mirror by the engine.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def model_env(source: ModelSource) -> dict[str, str]:
    """The environment a replica loading ``source`` needs (offline for packaged weights)."""
    return dict(OFFLINE_ENV) if source.package is not None else {}


def _deployment(cls: type) -> ServeDeployment:
    return cast(ServeDeployment, serve.deployment(cls))


def _replicas(s: SpecialistConfig) -> dict[str, Any]:
    """A fixed number of replicas, or Serve's autoscaling starting from ``replicas``."""
    if s.autoscaling is None:
        return {"num_replicas": s.replicas}
    scaling = {**s.autoscaling.model_dump(), "initial_replicas": s.replicas}
    return {"num_replicas": "auto", "autoscaling_config": scaling}


def _request_router(s: SpecialistConfig) -> RequestRouterConfig:
    """The engine deployment's replica router and how often replicas report their load."""
    settings: dict[str, Any] = {  # (a dict: mypy's pydantic plugin misreads Ray's model)
        "request_router_class": s.routing.router_class,
        "request_router_kwargs": s.routing.router_kwargs,
        "request_routing_stats_period_s": s.routing.stats_period_s,
        "request_routing_stats_timeout_s": max(5.0, 2 * s.routing.stats_period_s),
    }
    return RequestRouterConfig(**settings)


def _actor_options(resources: Resources, env: dict[str, str]) -> dict[str, Any]:
    return {**resources.ray_options(), "runtime_env": {"env_vars": env}}


def _router(config: MixserveConfig, cache_dir: Path, env: dict[str, str], trace: Any) -> Any:
    from router_model import SpecialistProfile, relative_costs

    r = config.router
    relative = relative_costs(
        [(s.price.usd_per_mtok_in, s.price.usd_per_mtok_out) for s in config.specialists],
        r.expected_input_tokens,
        r.expected_output_tokens,
    )
    profiles = [
        SpecialistProfile(s.name, s.description, list(s.examples), float(cost))
        for s, cost in zip(config.specialists, relative, strict=True)
    ]
    artifact = str(config.resolve(r.artifact)) if r.artifact else None
    probe = r.early_exit
    if probe is not None:
        probe = probe.model_copy(update={"artifact": str(config.resolve(probe.artifact))})
    return (
        _deployment(RouterServer)
        .options(
            name="router",
            num_replicas=r.replicas,
            max_ongoing_requests=r.max_ongoing_requests,
            max_queued_requests=r.max_queued_requests,
            max_surge_percent=100,  # a new version starts beside the old
            ray_actor_options=_actor_options(r.resources, {**env, **model_env(r.model)}),
        )
        .bind(
            # with an artifact, the router runs its LLM as deep as the artifact was trained
            r.model_copy(
                update={
                    "artifact": artifact,
                    "early_exit": probe,
                    "layer": config.artifact_layer() or r.layer,
                }
            ),
            r.model.location(cache_dir),
            profiles,
            trace,
        )
    )


def _retrievers(
    config: MixserveConfig, cache_dir: Path, env: dict[str, str], trace: Any
) -> dict[str, Any]:
    """Collection -> its own retriever deployment (``retriever-<name>``): each sized and
    placed by its collection's settings, following its own versions."""
    data_dir = config.data_dir(get_settings().data_dir, cache_dir)
    r = config.retrieval
    specs = {spec.name: spec for spec in collection_specs(config)}
    out: dict[str, Any] = {}
    for c in r.collections:
        out[c.name] = (
            _deployment(RetrieverServer)
            .options(
                name=c.deployment,
                num_replicas=c.replicas,
                max_ongoing_requests=r.max_ongoing_requests,
                max_queued_requests=r.max_queued_requests,
                max_surge_percent=100,
                ray_actor_options=_actor_options(
                    c.resources or r.resources, {**env, **OFFLINE_ENV}
                ),
            )
            .bind(r, specs[c.name], str(data_dir), str(cache_dir), trace)
        )
    return out


def engine_app(config_name: str, deployment: str) -> str:
    """The Serve application holding one engine deployment: ``<config>-<deployment>``."""
    return f"{config_name}-{deployment}"


class EngineArgs(BaseModel):
    """Everything one engine application is built from, and nothing else: a Serve config
    restarts every deployment of an application whose arguments changed, so another
    specialist's change must leave these alone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    members: list[SpecialistConfig] = Field(description="The specialists the engine serves.")
    model_dir: str = Field(description="The prepared model directory, or a model id.")
    adapters: dict[str, str] = Field(description="Specialist -> its LoRA adapter's location.")
    templates: dict[str, str] = Field(
        description="Specialist -> its chat template's text (absent: the model's own)."
    )
    run_id: str = Field(description="Marks the run's processes.")
    tracing: dict[str, Any] = Field(description="TraceOptions, as plain values.")


def engine_args(
    config: MixserveConfig, members: list[SpecialistConfig], cache_dir: Path, run_id: str,
    trace: TraceOptions,
) -> EngineArgs:  # fmt: skip
    adapters = {m.name: str(config.adapter(m)) for m in members if m.lora is not None}
    templates = {m.name: config.chat_template(m) for m in members}
    return EngineArgs(
        members=members,
        model_dir=members[0].model.location(cache_dir),
        adapters=adapters,
        templates={name: text for name, text in templates.items() if text is not None},
        run_id=run_id,
        tracing=asdict(trace),
    )


def _engine(a: EngineArgs) -> Application:
    """The engine deployment, behind ``EngineFront``, its application's ingress."""
    s = a.members[0]  # the specialists of one engine share all of these
    env = {**BASE_ENV, RUN_MARKER_VAR: a.run_id, **model_env(s.model), **s.engine_env}
    trace = TraceOptions(**a.tracing)
    engine = (
        _deployment(SpecialistServer)
        .options(
            name=s.deployment,
            **_replicas(s),
            max_ongoing_requests=s.max_ongoing_requests,
            max_queued_requests=s.max_queued_requests,
            graceful_shutdown_timeout_s=30,
            health_check_period_s=10,
            health_check_timeout_s=30,
            # a new version starts beside the old, which serves until it is ready
            max_surge_percent=s.rollout_surge_percent,
            ray_actor_options=_actor_options(s.resources, env),
            request_router_config=_request_router(s),
        )
        .bind(
            a.members,
            a.model_dir,
            a.adapters,
            trace,
            specialist_versions(a.members, a.templates),
            a.templates,
        )
    )
    return (
        _deployment(EngineFront)
        .options(
            name=f"{s.deployment}-front",
            num_replicas=1,
            max_ongoing_requests=16,
            max_queued_requests=64,
            max_surge_percent=100,
            ray_actor_options=_actor_options(
                Resources(num_cpus=0), {**BASE_ENV, RUN_MARKER_VAR: a.run_id}
            ),
        )
        .bind(engine)
    )


def build_apps(
    config: MixserveConfig,
    *,
    cache_dir: Path,
    redis_url: str | None,
    run_id: str,
    tracing: TraceOptions | None = None,
) -> dict[str, Application]:
    """The Serve applications, in the order to deploy them: one per engine deployment
    (``engine_app``: a changed specialist rolls over only its own engine's replicas, as
    Serve restarts every deployment of an application whose arguments changed), then
    the main one (gateway, router, a retriever per collection) under ``config.name``,
    whose gateway finds the engines by name. ``tracing`` reaches every deployment through
    its arguments (replicas on other nodes need not share this process's environment)."""
    env = {**BASE_ENV, RUN_MARKER_VAR: run_id}
    trace = tracing or TraceOptions(enabled=False)
    apps: dict[str, Application] = {}
    addresses: dict[str, EngineAddress] = {}
    for deployment, members in config.engine_deployments().items():
        name = engine_app(config.name, deployment)
        apps[name] = _engine(engine_args(config, members, cache_dir, run_id, trace))
        for m in members:  # every member's calls go to its group's one engine
            addresses[m.name] = EngineAddress(name, deployment)
    g = config.gateway
    apps[config.name] = (
        _deployment(Gateway)
        .options(
            name="gateway",
            num_replicas=g.replicas,
            max_ongoing_requests=g.max_ongoing_requests,
            max_queued_requests=g.max_queued_requests,
            # past the gateway replica's own queue, Serve refuses before our code sees the
            # request (in the replica's HTTP server under HAProxy, else in Serve's proxy):
            # a 429 with Retry-After there too, as admission control answers
            backpressure_config=BackpressureConfig(status_code=429, retry_after_s=1),
            max_surge_percent=100,
            ray_actor_options=_actor_options(g.resources, env),
        )
        .bind(
            config,
            _router(config, cache_dir, env, trace),
            _retrievers(config, cache_dir, env, trace),
            addresses,
            redis_url,
            # settlements made while Redis is down wait here (per node, drained by any
            # gateway of the node once Redis is back)
            str(cache_dir / "spool" / config.name),
            trace,
            versions=config_versions(config),
        )
    )
    return apps


class MainArgs(BaseModel):
    """What the main application (gateway, router, retrievers) is built from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    config: MixserveConfig = Field(description="The mixserve config (paths absolute).")
    cache_dir: str = Field(description="Where prepared models and indexes live on the nodes.")
    redis_url: str | None = Field(None, description="The Redis every gateway uses.")
    run_id: str = Field(description="Marks the run's processes.")
    tracing: dict[str, Any] = Field(description="TraceOptions, as plain values.")


def serve_args(
    config: MixserveConfig,
    *,
    cache_dir: Path,
    redis_url: str | None,
    run_id: str,
    tracing: TraceOptions | None = None,
) -> dict[str, dict[str, Any]]:
    """Application name -> the ``args`` of its entry in a Serve config (``serve_app``
    builds it from them on the cluster): the engines' first, the main one's last."""
    trace = tracing or TraceOptions(enabled=False)
    out: dict[str, dict[str, Any]] = {}
    for deployment, members in config.engine_deployments().items():
        a = engine_args(config, members, cache_dir, run_id, trace)
        out[engine_app(config.name, deployment)] = {"engine": a.model_dump(mode="json")}
    main = MainArgs(
        config=config, cache_dir=str(cache_dir), redis_url=redis_url, run_id=run_id,
        tracing=asdict(trace),
    )  # fmt: skip
    out[config.name] = {"main": main.model_dump(mode="json")}
    return out


def serve_app(args: dict[str, Any]) -> Application:
    """Serve's application builder (``import_path: orchestrator.app:serve_app`` in a
    Serve config from ``mixserve build serve-config``): an engine application from
    ``{"engine": EngineArgs}``, the main one from ``{"main": MainArgs}``."""
    if set(args) == {"engine"}:
        return _engine(EngineArgs.model_validate(args["engine"]))
    if set(args) == {"main"}:
        a = MainArgs.model_validate(args["main"])
        apps = build_apps(
            a.config,
            cache_dir=Path(a.cache_dir),
            redis_url=a.redis_url,
            run_id=a.run_id,
            tracing=TraceOptions(**a.tracing),
        )
        return apps[a.config.name]
    raise ValueError(f"args must be {{'engine': ...}} or {{'main': ...}}, not keys {sorted(args)}")
