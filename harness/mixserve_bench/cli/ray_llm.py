"""Ray Serve LLM as a peer of `mixserve bench overhead --ray-serve-llm`: its OpenAI
application (``ray.serve.llm.build_openai_app``: an ``LLMServer`` deployment over vLLM's
own serving layer, behind its ``OpenAiIngress``) deployed into the benchmark's own Serve,
under a route prefix of its own, on the same weights, engine settings, chat template and
tool parser as the `vllm serve` peer, on the CPU backend (``accelerator_config: cpu``)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from orchestrator.config import MixserveConfig, SpecialistConfig, with_specialists

APP = "ray-serve-llm"
PREFIX = "/ray-serve-llm"


def hosting_config(cfg: MixserveConfig) -> MixserveConfig:
    """``cfg`` with every specialist on the fake engine: mixserve then only hosts the
    Serve that Ray Serve LLM's app runs in (a third real engine does not fit in memory
    beside it and the `vllm serve` peer here: each takes about 5 GiB)."""
    fake = {"backend": "fake", "engine_kwargs": {}, "engine_env": {}, "cpu_binding": "auto"}
    return with_specialists(cfg, [s.model_copy(update=fake) for s in cfg.specialists])


def llm_config(
    spec: SpecialistConfig, model_dir: str, engine_kwargs: Mapping[str, Any], env: Mapping[str, str]
) -> Any:
    """Ray Serve LLM's ``LLMConfig`` for ``spec``'s engine: one replica, whose placement
    group is one bundle of the specialist's CPU share (Ray's default adds a whole CPU
    for the replica actor to the engine's: the replica asks for none of its own here)."""
    from ray.serve.llm import LLMConfig

    return LLMConfig(
        model_loading_config={"model_id": spec.name, "model_source": model_dir},
        accelerator_config={"kind": "cpu"},
        placement_group_config={"bundles": [{"CPU": spec.resources.num_cpus}]},
        engine_kwargs={"max_model_len": spec.max_model_len, **engine_kwargs},
        runtime_env={"env_vars": dict(env)},
        deployment_config={"num_replicas": 1, "ray_actor_options": {"num_cpus": 0}},
    )


@contextmanager
def ray_serve_llm(
    base_url: str,
    spec: SpecialistConfig,
    model_dir: str,
    engine_kwargs: Mapping[str, Any],
    env: Mapping[str, str],
    ready_timeout_s: float = 900.0,
) -> Iterator[str]:
    """Ray Serve LLM's app for ``spec`` in the Serve this process is connected to; yields
    its URL (``base_url`` + the prefix) once it runs, deletes it on exit."""
    from ray import serve
    from ray.serve.api import RunTarget
    from ray.serve.llm import build_openai_app

    app = build_openai_app(
        {
            "llm_configs": [llm_config(spec, model_dir, engine_kwargs, env)],
            "ingress_deployment_config": {"ray_actor_options": {"num_cpus": 0.1}},
        }
    )
    # not Serve's own wait: it has no deadline, and an engine that cannot be placed
    # (its placement group larger than what is free) would hold the bench for ever
    serve.run_many(
        [RunTarget(app, name=APP, route_prefix=PREFIX)], wait_for_applications_running=False
    )
    try:
        _wait_running(ready_timeout_s)
        yield base_url.rstrip("/") + PREFIX
    finally:
        serve.delete(APP)


def _wait_running(timeout_s: float) -> None:
    from ray import serve

    deadline = time.monotonic() + timeout_s
    while True:
        status = serve.status().applications.get(APP)
        if status is not None and status.status == "RUNNING":
            return
        if status is not None and status.status == "DEPLOY_FAILED":
            raise RuntimeError(f"Ray Serve LLM did not deploy: {status.message.splitlines()[0]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"Ray Serve LLM not running after {timeout_s:.0f} s")
        time.sleep(2.0)
