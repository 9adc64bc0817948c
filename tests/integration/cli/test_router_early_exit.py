"""The router's early exit on the real router LLM: the two-stage pass equals one full
pass, the shipped probe loads and decides, `mixserve router probe` trains one from real
score tables, and a probe that does not fit the router is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from orchestrator import profiles
from orchestrator.config import load_config
from orchestrator.settings import get_settings
from router_model import ArtifactError, SpecialistProfile, build_router
from router_model.backbone import HiddenStateEmbedder
from tests.helpers.cli import invoke_mixserve, require_prepared_models
from tests.helpers.paths import ROOT

ROUTERDC = ROOT.parent / "shared" / "data" / "routerdc"
TUNE = ROOT / "benchmarks" / "data" / "everyday_tune.jsonl"  # 48 written for the benchmark
QUERIES = [
    "What is the capital of Australia?",
    "Write a Python function that merges two sorted lists into one sorted list.",
    "What is 48 divided by 6, plus 5?",
]


@pytest.fixture(scope="module")
def cfg():
    require_prepared_models()
    return load_config(profiles.FOLDER / "cpu.yaml")


@pytest.fixture(scope="module")
def model_dir(cfg):
    return cfg.router.model.location(get_settings().cache_dir)


def fleet(cfg):
    return [SpecialistProfile(s.name, s.description, list(s.examples)) for s in cfg.specialists]


@pytest.mark.parametrize("layer", [1, 5])
def test_two_stages_equal_one_full_pass(model_dir, layer):
    embedder = HiddenStateEmbedder(model_dir, 8, 64)
    embedder.load()
    embedder.add_stage(layer)
    stage = embedder.embed_until(QUERIES, layer)
    np.testing.assert_array_equal(stage.pooled, embedder.embed_layers(QUERIES, [layer])[layer])
    full = embedder.embed(QUERIES)
    np.testing.assert_array_equal(stage.rest([0, 2]), full[[0, 2]])
    np.testing.assert_array_equal(stage.rest([1]), full[[1]])
    with pytest.raises(ValueError, match=r"must lie in 1\.\.7"):
        embedder.add_stage(8)
    with pytest.raises(RuntimeError, match="no early exit prepared at layer 2"):
        embedder.embed_until(QUERIES, 2)


def test_the_shipped_probe_decides_sure_queries_early_and_the_rest_at_full_depth(cfg, model_dir):
    r = cfg.router
    assert r.early_exit is not None, "the cpu profile ships an early exit"
    probe = cfg.resolve(r.early_exit.artifact)
    common = {"max_query_tokens": r.max_query_tokens, "head": r.head, "head_params": r.head_params}
    early = build_router(
        model_dir, fleet(cfg), layer=r.layer, exit_artifact=probe,
        exit_layer=r.early_exit.layer, exit_margin=r.early_exit.min_margin, **common,
    )  # fmt: skip
    full = build_router(model_dir, fleet(cfg), layer=r.layer, **common)
    gsm8k = [json.loads(line)["query"] for line in (ROUTERDC / "gsm8k_train.jsonl").open()][:20]
    decisions = early.route_batch(gsm8k)
    # benchmark-style math questions: the probe is sure of most and routes them to math
    assert sum(d.layer == r.early_exit.layer for d in decisions) >= 10, decisions
    assert all(d.head == "linear" for d in decisions if d.layer == r.early_exit.layer)
    assert sum(d.choice == "math" for d in decisions) >= 18
    # a query the probe is unsure of is decided at full depth, exactly as without it
    strict = build_router(
        model_dir, fleet(cfg), layer=r.layer, exit_artifact=probe,
        exit_layer=r.early_exit.layer, exit_margin=1.0 + 1e-6, **common,
    )  # fmt: skip
    deep, alone = strict.route_batch(QUERIES), full.route_batch(QUERIES)
    assert [d.layer for d in deep] == [r.layer] * len(QUERIES)
    assert [d.scores for d in deep] == [d.scores for d in alone]
    assert [d.choice for d in deep] == ["general", "code", "math"]


def test_agreement_decides_everyday_questions_at_the_exit_layer(cfg, model_dir):
    r = cfg.router
    assert r.early_exit is not None and r.early_exit.agree, "the cpu profile agrees"
    common = {"layer": r.layer, "max_query_tokens": r.max_query_tokens, "head": r.head,
              "head_params": r.head_params, "exit_artifact": cfg.resolve(r.early_exit.artifact),
              "exit_layer": r.early_exit.layer, "exit_margin": r.early_exit.min_margin}  # fmt: skip
    rows = [json.loads(line) for line in TUNE.read_text().splitlines() if line.strip()]
    texts = [row["query"] for row in rows]
    margin_only = build_router(model_dir, fleet(cfg), **common).route_batch(texts)
    agreeing = build_router(model_dir, fleet(cfg), exit_agree=True, **common).route_batch(texts)
    # short everyday questions: the probe alone is sure of few, the two heads agree on most
    early = [d.layer == r.early_exit.layer for d in agreeing]
    assert sum(d.layer == r.early_exit.layer for d in margin_only) <= len(texts) // 2
    assert sum(early) >= len(texts) * 0.6, agreeing
    right = sum(d.choice == row["specialist"] for d, row in zip(agreeing, rows, strict=True))
    assert right >= len(texts) * 0.95, agreeing
    assert all(d.head == "linear" for d, e in zip(agreeing, early, strict=True) if e)


def test_a_probe_that_does_not_fit_the_router_is_refused(cfg, model_dir):
    r = cfg.router
    probe = cfg.resolve(r.early_exit.artifact)
    common = {"layer": r.layer, "max_query_tokens": r.max_query_tokens, "exit_artifact": probe}
    with pytest.raises(ArtifactError, match=r"trained for .*layer 1.*but the router runs.*layer 2"):
        build_router(model_dir, fleet(cfg), exit_layer=2, **common)
    renamed = [SpecialistProfile("writing", "w", ["w"]), *fleet(cfg)[1:]]
    with pytest.raises(ArtifactError, match=r"not every specialist by name \(missing: writing\)"):
        build_router(model_dir, renamed, exit_layer=1, **common)


def test_router_probe_trains_a_probe_the_config_can_use(tmp_path):
    require_prepared_models()
    assert ROUTERDC.is_dir(), f"routing data not found at {ROUTERDC}"
    tasks = []
    for name, specialist in (("gsm8k", "math"), ("humaneval", "code"), ("mmlu", "general")):
        lines = (ROUTERDC / f"{name}_train.jsonl").read_text().split("\n")[:40]
        (tmp_path / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
        tasks += ["--task", f"{tmp_path / name}.jsonl={specialist}"]
    out = tmp_path / "probe"
    proc = invoke_mixserve("router", "probe", *tasks, "--layer", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    meta = json.loads((out / "router.json").read_text())
    assert meta["head"]["name"] == "linear" and meta["models"] == ["general", "code", "math"]
    assert meta["backbone"]["layer"] == 2
    assert meta["training"]["cross_validation"]["accuracy"] > 0.8
    assert [f["n"] for f in meta["training"]["files"]] == [40, 40, 40]

    def refused(*args: str) -> str:
        bad = invoke_mixserve("router", "probe", *args, "--out", str(tmp_path / "x"))
        assert bad.returncode != 0 and not (tmp_path / "x").exists()
        assert "Traceback" not in bad.stderr
        return bad.stderr

    assert "'poetry' is not a specialist" in refused(
        "--task", f"{tasks[1]}x=poetry", "--layer", "1"
    )
    assert "expected FILE=SPECIALIST" in refused("--task", "nofile", "--layer", "1")
    assert "must be below router.layer (18)" in refused(*tasks[:2], "--layer", "18")
    missing = refused("--task", f"{tmp_path / 'none.jsonl'}=math", "--layer", "1")
    assert "none.jsonl: cannot read" in missing
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    corrupt = refused("--task", f"{tmp_path / 'bad.jsonl'}=math", "--layer", "1")
    assert "bad.jsonl:1: not a JSON object with a 'query'" in corrupt
