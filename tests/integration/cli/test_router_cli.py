"""`mixserve router train / eval / calibrate` on slices of the real score tables, with the
real router LLM (no fakes), and their bad-input paths."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from orchestrator import profiles
from router_model import ArtifactError, SpecialistProfile, build_router, read_score_tables
from router_model.precision import resolve_dtype
from tests.helpers.cli import invoke_mixserve
from tests.helpers.paths import ROOT

DATA = ROOT.parent / "shared" / "data"
ROUTERDC = ["arc_challenge", "cmmlu", "gsm8k", "humaneval", "mmlu"]
ROWS = 40


@pytest.fixture(scope="module")
def data_dir():
    # the suite runs beside ../shared: a missing data folder is a broken checkout, and
    # must fail loudly rather than pass by skipping
    assert DATA.is_dir(), f"routing data not found at {DATA} (see ../shared/data/README.md)"
    return DATA


def mixserve(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = invoke_mixserve(*args)
    if check:
        assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def head_slice(src: Path, dst: Path, start: int = 0) -> Path:
    lines = src.read_text(encoding="utf-8").split("\n")
    dst.write_text("\n".join(lines[start : start + ROWS]) + "\n", encoding="utf-8")
    return dst


def scores_args(paths: list[Path]) -> list[str]:
    return [a for p in paths for a in ("--scores", str(p))]


@pytest.fixture(scope="module")
def slices(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("slices")
    out = {}
    for part, start in (("train", 0), ("test", ROWS)):
        folder = root / part
        folder.mkdir()
        prices = (data_dir / "routerdc" / "models.json").read_text()
        (folder / "models.json").write_text(prices)
        out[part] = [
            head_slice(data_dir / "routerdc" / f"{n}_train.jsonl", folder / f"{n}.jsonl", start)
            for n in ROUTERDC
        ]
    return out


@pytest.fixture(scope="module")
def artifact(slices, tmp_path_factory):
    out = tmp_path_factory.mktemp("art") / "router"
    proc = mixserve(
        "router", "train", *scores_args(slices["train"]), "--out", str(out), "--head", "knn",
        "--param", "k=5", "--param", "prior_weight=10", "--folds", "2", "--layer", "2",
    )  # fmt: skip
    assert "cross-validated (2 folds)" in proc.stderr
    return out


def test_train_writes_a_checksummed_artifact_with_metadata(artifact):
    meta = json.loads((artifact / "router.json").read_text())
    assert meta["head"] == {"name": "knn", "params": {"k": 5, "prior_weight": 10}}
    # the precision the router ran in, chosen from this machine's CPU (dtype: auto)
    assert meta["backbone"]["layer"] == 2 and meta["backbone"]["dtype"] == resolve_dtype("auto")
    assert [f["n"] for f in meta["training"]["files"]] == [ROWS] * 5
    assert set(meta["training"]["cross_validation"]["files"]) == set(ROUTERDC)
    assert len(meta["models"]) == 7 and meta["prices"]  # models.json beside the tables
    assert sorted(p.name for p in artifact.iterdir()) == ["head.npz", "router.json"]


def test_eval_json_matches_figures_recomputed_from_predictions(artifact, slices, tmp_path):
    preds = tmp_path / "preds.jsonl"
    proc = mixserve(
        "router", "eval", "--router", str(artifact), *scores_args(slices["test"]),
        "--json", "--sweep-cost", "--predictions", str(preds), "--latency-samples", "20",
        "--compile",
    )  # fmt: skip
    result = json.loads(proc.stdout)  # exactly one JSON object on stdout
    assert set(result) == {"files", "average", "latency_ms"}
    assert result["latency_ms"]["p99"] >= result["latency_ms"]["p50"] > 0
    lines = [json.loads(line) for line in preds.read_text().splitlines()]
    tables = read_score_tables(slices["test"])
    assert [line["query"] for line in lines] == [q for t in tables for q in t.queries]
    start = 0
    for table in tables:
        report = result["files"][table.name]
        assert report["n"] == len(table)
        for key in ("router", "best_single", "oracle", "random", "cpt50", "cpt80"):
            assert 0.0 <= report[key] <= 1.0, key
        # APGR, (router - weak) / (strong - weak), leaves [0, 1] when the router does worse
        # than the weak model or better than the strong one, as it may on 40 rows
        assert np.isfinite(report["apgr"])
        assert report["oracle"] >= report["best_single"] >= report["random"]
        earned = table.earned()
        mine = lines[start : start + len(table)]
        picks = [table.models.index(line["choice"]) for line in mine]
        assert report["router"] == pytest.approx(earned[np.arange(len(table)), picks].mean())
        for line in mine:  # the choice is the top predicted quality (lambda 0)
            assert line["predicted"][line["choice"]] == max(line["predicted"].values())
        assert sum(report["share"].values()) == pytest.approx(1.0)
        assert len(report["curve"]) == 21
        start += len(table)
    avg = np.mean([r["router"] for r in result["files"].values()])
    assert result["average"]["router"] == pytest.approx(avg)


def test_calibrate_hits_a_target_share_of_the_expensive_model(data_dir, tmp_path):
    tables = [
        head_slice(data_dir / "routellm" / f"{n}_train.jsonl", tmp_path / f"{n}.jsonl")
        for n in ("gsm8k", "mmlu")
    ]
    (tmp_path / "models.json").write_text((data_dir / "routellm" / "models.json").read_text())
    out = tmp_path / "router"
    mixserve("router", "train", *scores_args(tables), "--out", str(out), "--param", "k=5")
    proc = mixserve(
        "router", "calibrate", "--router", str(out), *scores_args(tables), "--target-share", "0.3"
    )
    result = json.loads(proc.stdout)
    assert result["share"] <= 0.3 and result["quality_cost_tradeoff"] > 0


def test_the_default_prior_head_says_when_groups_are_too_small(slices, tmp_path):
    out = tmp_path / "prior"
    proc = mixserve(
        "router", "train", *scores_args(slices["train"]), "--out", str(out), "--folds", "0",
        "--layer", "2", "--param", f"min_group={ROWS + 1}",
    )  # fmt: skip
    assert "note: 5 group(s) under min_group" in proc.stderr
    assert "no group is large enough: the head is the global table" in proc.stderr
    assert "residual weight" in proc.stderr and "chosen by inner cross-validation" in proc.stderr
    meta = json.loads((out / "router.json").read_text())
    assert meta["head"]["name"] == "prior" and meta["training"]["head_fit"]["notes"]
    proc = mixserve("router", "train", *scores_args(slices["train"]), "--out", str(tmp_path / "x"),
                    "--param", "residual_weight=1.5", check=False)  # fmt: skip
    assert proc.returncode != 0 and "residual_weight 1.5 must lie in [0, 1]" in proc.stderr
    assert not (tmp_path / "x").exists()


def test_bad_inputs_give_one_line_errors_and_leave_nothing(artifact, slices, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(slices["train"][0].read_text().split("\n")[0] + "\n{broken\n")
    out = tmp_path / "never"
    proc = mixserve("router", "train", "--scores", str(bad), "--out", str(out), check=False)
    assert proc.returncode != 0 and not out.exists()
    assert f"{bad}:2: invalid JSON" in proc.stderr and "Traceback" not in proc.stderr
    proc = mixserve("router", "train", "--scores", str(tmp_path / "missing.jsonl"),
                    "--out", str(out), check=False)  # fmt: skip
    assert proc.returncode != 0 and "no such file" in proc.stderr and not out.exists()
    proc = mixserve("router", "train", *scores_args(slices["train"][:1]), "--out", str(out),
                    "--head", "nearest_centroid", check=False)  # fmt: skip
    assert proc.returncode != 0 and "few-shot head" in proc.stderr

    one = scores_args(slices["test"][:1])
    proc = mixserve(
        "router", "calibrate", "--router", str(artifact), *one, "--target-share", "0.5", check=False
    )
    assert proc.returncode != 0 and "same price" in proc.stderr

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for f in artifact.iterdir():
        (corrupt / f.name).write_bytes(f.read_bytes())
    (corrupt / "head.npz").write_bytes(b"garbage")
    proc = mixserve("router", "eval", "--router", str(corrupt),
                    *scores_args(slices["test"][:1]), check=False)  # fmt: skip
    assert proc.returncode != 0 and "checksum mismatch" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1

    other = tmp_path / "other"
    other.mkdir()
    for f in artifact.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    meta = json.loads((other / "router.json").read_text())
    meta["backbone"]["weights"] = "0" * 64  # as if made for another router LLM
    (other / "router.json").write_text(json.dumps(meta))
    proc = mixserve("router", "eval", "--router", str(other),
                    *scores_args(slices["test"][:1]), check=False)  # fmt: skip
    assert proc.returncode != 0 and "trained for" in proc.stderr


def test_serving_refuses_an_artifact_for_another_layer_or_unmapped_specialists(artifact):
    from orchestrator.config import load_config
    from orchestrator.settings import get_settings

    cfg = load_config(profiles.FOLDER / "cpu.yaml")
    directory = cfg.router.model.location(get_settings().cache_dir)
    fleet = [SpecialistProfile(s.name, s.description, s.examples) for s in cfg.specialists]
    models = json.loads((artifact / "router.json").read_text())["models"]
    mapping = {p.name: models[i] for i, p in enumerate(fleet)}
    width = {"max_query_tokens": cfg.router.max_query_tokens}
    with pytest.raises(ArtifactError, match=r"trained for .*layer 2.*layer 3"):
        build_router(directory, fleet, layer=3, artifact=artifact, models=mapping, **width)
    with pytest.raises(ArtifactError, match=r"64 tokens.*but the router runs.*32 tokens"):
        build_router(
            directory, fleet, layer=2, artifact=artifact, models=mapping, max_query_tokens=32
        )
    with pytest.raises(ArtifactError, match="missing: code, math"):
        build_router(
            directory, fleet, layer=2, artifact=artifact, models={"general": models[0]}, **width
        )
    router = build_router(directory, fleet, layer=2, artifact=artifact, models=mapping, **width)
    decision = router.route("Natalia sold clips to 48 of her friends. How many in total?")
    assert decision.choice in mapping and decision.head == "knn"
    assert set(decision.scores) == set(mapping)


def test_config_rejects_an_artifact_without_a_full_model_map(tmp_path):
    data = yaml.safe_load((profiles.FOLDER / "cpu.yaml").read_text())
    data["router"]["artifact"] = "router"
    data["router"]["models"] = {"general": "x", "nobody": "y"}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    proc = mixserve("config", "validate", str(path), check=False)
    assert proc.returncode != 0
    assert "router.models names unknown specialists: nobody" in proc.stderr


def test_training_reports_both_yardsticks_at_layer_1_and_eval_refits_on_request(slices, tmp_path):
    out = tmp_path / "yardsticks"
    three = slices["train"][:3]
    proc = mixserve("router", "train", *scores_args(three), "--out", str(out), "--folds", "2",
                    "--param", "k=5")  # fmt: skip
    assert "cross-validated (2 folds)" in proc.stderr
    assert "leave one table out: router" in proc.stderr
    meta = json.loads((out / "router.json").read_text())
    assert meta["backbone"]["layer"] == 1  # layer 1 unless told otherwise
    left_out = meta["training"]["leave_one_table_out"]
    assert set(left_out["files"]) == {p.stem for p in three}
    for report in left_out["files"].values():
        assert report["table_best"] >= report["best_single"] and 0 <= report["router"] <= 1
    proc = mixserve("router", "eval", "--router", str(out), *scores_args(slices["test"][:3]),
                    "--cv", "both", "--folds", "2", "--latency-samples", "3", "--json")  # fmt: skip
    result = json.loads(proc.stdout)
    assert result["cross_validation"]["folds"] == 2
    assert set(result["leave_one_table_out"]["files"]) == {p.stem for p in slices["test"][:3]}


def test_yardstick_and_fallback_bad_inputs_are_one_line_and_write_nothing(slices, tmp_path):
    out = tmp_path / "never"
    one = scores_args(slices["train"][:1])
    two = scores_args(slices["train"][:2])
    single = tmp_path / "single.jsonl"
    rows = [json.loads(line) for line in slices["train"][0].read_text().splitlines()]
    single.write_text("".join(
        json.dumps({"query": r["query"], "scores": {"only": 0.5}}) + "\n" for r in rows
    ))  # fmt: skip
    cases = [
        ([*one, "--cv", "leave-one-table-out"],
         "--cv leave-one-table-out needs at least two score tables (one is left out at a time)"),
        ([*one, "--cv", "both"], "--cv both needs at least two score tables"),
        ([*two, "--cv", "sideways"], "--cv 'sideways': expected one of stratified"),
        ([*two, "--cv", "stratified", "--folds", "0"], "needs --folds of at least 2"),
        (["--scores", str(single)], "score one model (only): a router needs two to choose from"),
        ([*two, "--param", "far=0"], "far 0 must be above 0, or be -1 to have it chosen"),
        ([*two, "--param", "blend=1"], "blend 1 must lie in [0, 1)"),
        ([*two, "--param", "temperature=0.5"], "temperature 0.5 must be at least 1"),
    ]  # fmt: skip
    for args, message in cases:
        proc = mixserve("router", "train", *args, "--out", str(out), check=False)
        assert proc.returncode != 0, args
        assert message in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
        assert not out.exists()


def test_the_config_runs_the_router_as_deep_as_its_artifact(artifact, tmp_path):
    from orchestrator.config import load_config

    models = json.loads((artifact / "router.json").read_text())["models"]
    data = yaml.safe_load((profiles.FOLDER / "cpu.yaml").read_text())
    data["base_dir"] = str(profiles.FOLDER)
    data["router"].update(artifact=str(artifact), models=dict(zip(
        ("general", "code", "math"), models, strict=False)))  # fmt: skip
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))  # the profile's layer 18 against an artifact at 2
    proc = mixserve("config", "validate", str(path), check=False)
    assert proc.returncode != 0
    assert "router.layer is 18, but router.artifact was trained at layer 2" in proc.stderr
    del data["router"]["layer"]
    path.write_text(yaml.safe_dump(data))
    assert load_config(path).artifact_layer() == 2  # the early exit (layer 1) is below it
    data["router"]["early_exit"]["layer"] = 2
    path.write_text(yaml.safe_dump(data))
    proc = mixserve("config", "validate", str(path), check=False)
    assert proc.returncode != 0
    assert "router.early_exit.layer (2) must be below the layer router.artifact" in proc.stderr
