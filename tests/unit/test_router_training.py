import json

import numpy as np
import pytest

from router_model.artifact import ArtifactError, RouterArtifact, load_artifact, save_artifact
from router_model.backbone import BackboneSpec
from router_model.calibrate import calibrate_tradeoff, strong_share
from router_model.evaluate import average_report, cost_sweep, table_report
from router_model.heads import KnnHead, LinearHead
from router_model.scores import ScoreTableError, read_score_table, read_score_tables
from router_model.train import cross_validate, stratified_folds, train_head

SPEC = BackboneSpec("abc123", 6, 128, "bfloat16")


def write_table(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def row(query, a, b, credit=None):
    out = {"query": query, "scores": {"a": a, "b": b}}
    if credit:
        out["credit"] = credit
    return out


def test_credit_rules_and_a_raw_next_line_character(tmp_path):
    # U+0085 inside a JSON string is legal; str.splitlines() would cut the line there
    path = write_table(
        tmp_path / "t.jsonl",
        [row("one\u0085two", 0.3, 0.0, "positive"), row("three", 0.3, 0.6, "fraction")],
    )
    table = read_score_table(path)
    assert table.queries[0] == "one\u0085two"
    np.testing.assert_allclose(table.earned(), [[1.0, 0.0], [0.3, 0.6]])


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "t.jsonl:2: invalid JSON"),
        ('{"query": "", "scores": {"a": 1, "b": 0}}', "t.jsonl:2: 'query' must be"),
        ('{"query": "q", "scores": {"a": 2, "b": 0}}', "t.jsonl:2: score of 'a'"),
        ('{"query": "q", "scores": {"a": true, "b": 0}}', "t.jsonl:2: score of 'a'"),
        ('{"query": "q", "scores": {"a": 1}}', "t.jsonl:2: models differ.*missing b"),
        ('{"query": "q", "scores": {"a": 1, "b": 0}, "credit": "x"}', "t.jsonl:2: 'credit'"),
    ],
)
def test_malformed_lines_are_reported_with_their_line_number(tmp_path, line, message):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(row("ok", 1, 0)) + "\n" + line + "\n")
    with pytest.raises(ScoreTableError, match=message):
        read_score_table(path)


def test_missing_empty_and_mismatched_tables(tmp_path):
    with pytest.raises(ScoreTableError, match="no such file"):
        read_score_table(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(ScoreTableError, match="no rows"):
        read_score_table(tmp_path / "empty.jsonl")
    first = write_table(tmp_path / "x.jsonl", [row("q", 1, 0)])
    other = tmp_path / "y.jsonl"
    other.write_text(json.dumps({"query": "q", "scores": {"a": 1, "c": 0}}) + "\n")
    with pytest.raises(ScoreTableError, match=r"y.jsonl:1: .*missing b; unexpected c"):
        read_score_tables([first, other])
    with pytest.raises(ScoreTableError, match="share a name"):
        read_score_tables([first, first])


def test_table_report_and_average(tmp_path):
    table = read_score_table(
        write_table(tmp_path / "t.jsonl", [row("1", 1, 0), row("2", 0, 1), row("3", 0, 0)])
    )
    report = table_report(table, np.array([0, 1, 1]))
    assert report["router"] == pytest.approx(2 / 3)
    assert report["best_single"] == pytest.approx(1 / 3)
    assert report["oracle"] == pytest.approx(2 / 3)
    assert report["random"] == pytest.approx(1 / 3)
    assert report["share"] == {"a": pytest.approx(1 / 3), "b": pytest.approx(2 / 3)}
    avg = average_report([report, {**report, "router": 0.0}])
    assert avg["router"] == pytest.approx(1 / 3)


def test_cost_sweep_matches_routellm_definitions_by_hand():
    strong = np.array([1.0, 1.0, 0.0, 1.0])
    weak = np.array([0.0, 1.0, 0.0, 0.0])
    earned = np.stack([strong, weak], axis=1)
    costs = np.tile([10.0, 1.0], (4, 1))
    perfect = np.stack([strong - weak, np.zeros(4)], axis=1)  # gain ranks 0 and 3 first
    result = cost_sweep(earned, perfect, costs, points=5)
    # quality at shares 0, .25, .5, .75, 1 = .25 .5 .75 .75 .75 -> PGR 0 .5 1 1 1
    assert result["apgr"] == pytest.approx(0.75)
    assert result["cpt50"] == pytest.approx(0.25)
    assert result["cpt80"] == pytest.approx(0.4)
    assert [p["accuracy"] for p in result["curve"]] == pytest.approx([0.25, 0.5, 0.75, 0.75, 0.75])
    # all queries tie: random tie-breaking in expectation is the straight line
    flat = cost_sweep(earned, np.full((4, 2), 0.5), costs)
    assert flat["apgr"] == pytest.approx(0.5)
    assert flat["cpt50"] == pytest.approx(0.5)


def test_calibration_hits_the_target_share():
    rng = np.random.default_rng(0)
    predicted = rng.uniform(size=(400, 2))
    relative = np.array([1.0, 0.05])
    assert strong_share(predicted, relative, 0.0) > 0.4
    result = calibrate_tradeoff(predicted, relative, 0.2)
    assert result["share"] <= 0.2 and result["share"] >= 0.19
    assert strong_share(predicted, relative, result["quality_cost_tradeoff"] * 0.9) > 0.2
    assert calibrate_tradeoff(predicted, relative, 1.0)["quality_cost_tradeoff"] == 0.0


def synthetic(n=300, seed=0):
    """Two tasks; b wins most of task 1 and a of task 0; a per-query feature decides."""
    rng = np.random.default_rng(seed)
    groups = np.repeat([0, 1], n // 2)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    x[:, 0] += groups * 6.0
    best_b = x[:, 1] > np.where(groups == 1, -0.7, 0.7)
    earned = np.stack([~best_b, best_b], axis=1).astype(np.float64)
    return x, earned, groups


@pytest.mark.parametrize("head", [KnnHead(k=10, prior_weight=5), LinearHead(l2=1.0)])
def test_learned_heads_find_per_query_signal(head):
    x, earned, groups = synthetic()
    head.fit_scores(x[::2], earned[::2], groups[::2])
    predicted = head.predict(x[1::2])
    assert predicted.shape == (150, 2)
    assert predicted.min() >= 0 and predicted.max() <= 1
    accuracy = earned[1::2][np.arange(150), predicted.argmax(axis=1)].mean()
    assert accuracy > 0.85  # the best model per task earns about 0.76


def test_the_linear_heads_shrinkage_is_chosen_by_leave_one_out_error_unless_set():
    from sklearn.linear_model import Ridge

    from router_model.heads import L2_GRID

    x, earned, groups = synthetic()
    chosen = LinearHead()
    chosen.fit_scores(x, earned, groups)
    l2 = chosen.fit_report()["l2"]
    assert l2 in L2_GRID and chosen.fit_report()["l2_criterion"] == "leave-one-out squared error"

    z = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)

    def loo_error(alpha):  # by hand: refit without each row in turn
        errors = []
        for i in range(len(x)):
            fit = Ridge(alpha=alpha).fit(np.delete(z, i, 0), np.delete(earned, i, 0))
            errors.append(((fit.predict(z[i : i + 1]) - earned[i]) ** 2).mean())
        return np.mean(errors)

    assert L2_GRID[0] < l2 < L2_GRID[-1]  # an interior choice: the grid spans it
    others = [loo_error(a) for a in (L2_GRID[0], 100.0, L2_GRID[-1])]
    assert loo_error(l2) <= min(others) * (1 + 1e-3)
    fixed = LinearHead(l2=1.0)
    fixed.fit_scores(x, earned, groups)
    assert fixed.fit_report() == {}
    for bad in (0.0, -2.0):
        with pytest.raises(ValueError, match=f"linear: l2 {bad:g} must be above 0, or be -1"):
            LinearHead(l2=bad)
    with pytest.raises(ValueError, match="at least 3 training queries"):
        LinearHead().fit_scores(x[:2], earned[:2], groups[:2])


def test_knn_prior_weight_pulls_toward_the_task_prior():
    x, earned, groups = synthetic()
    head = KnnHead(k=10, prior_weight=1e9)
    head.fit_scores(x, earned, groups)
    prior = np.stack([earned[groups == g].mean(axis=0) for g in (0, 1)])
    np.testing.assert_allclose(head.predict(x[:3]), np.tile(prior[0], (3, 1)), atol=1e-6)


def test_cross_validation_and_folds(tmp_path):
    x, earned, groups = synthetic(n=600)
    folds = stratified_folds(groups, 5)
    for g in (0, 1):
        assert np.bincount(folds[groups == g]).tolist() == [60] * 5
    rows = [row(str(i), *earned[i]) for i in range(len(x))]
    tables = [
        read_score_table(write_table(tmp_path / "t0.jsonl", rows[:300])),
        read_score_table(write_table(tmp_path / "t1.jsonl", rows[300:])),
    ]
    cv = cross_validate("knn", {"k": 10, "prior_weight": 5}, tables, x)
    assert set(cv["files"]) == {"t0", "t1"}
    assert cv["average"]["router"] > 0.85
    _, meta = train_head("knn", {"k": 10}, tables, x, folds=0)
    assert meta["cross_validation"] is None and meta["files"][0] == {"name": "t0", "n": 300}
    assert meta["head_fit"] == {}
    _, meta = train_head("prior", {"min_group": 301}, tables, x, folds=0)
    fit = meta["head_fit"]
    assert fit["notes"] == [
        "2 group(s) under min_group=301 rows: their queries count toward the global table only",
        "no group is large enough: the head is the global table",
    ]
    assert set(fit["cv_accuracy_by_weight"]) == {"0", "0.1", "0.2", "0.3", "0.5", "0.7", "1"}


def test_artifact_round_trip_checksum_and_backbone(tmp_path):
    x, earned, groups = synthetic()
    head = KnnHead(k=5)
    head.fit_scores(x, earned, groups)
    art = RouterArtifact("knn", head, SPEC, "package:p", ["a", "b"], {}, {"files": []})
    path = save_artifact(art, tmp_path / "router")
    save_artifact(art, path)  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["router"]
    loaded = load_artifact(path)
    np.testing.assert_allclose(loaded.head.predict(x[:4]), head.predict(x[:4]), atol=1e-3)
    loaded.check_backbone(SPEC)
    with pytest.raises(ArtifactError, match=r"trained for package:p .*layer 6.*layer 3"):
        loaded.check_backbone(BackboneSpec("abc123", 3, 128, "bfloat16"))
    data = bytearray((path / "head.npz").read_bytes())
    data[-10] ^= 0xFF
    (path / "head.npz").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="corrupt"):
        load_artifact(path)
    with pytest.raises(ArtifactError, match="not a router artifact"):
        load_artifact(tmp_path)


def test_a_failed_save_leaves_no_partial_artifact(tmp_path):
    class Broken(KnnHead):
        def state(self):
            raise RuntimeError("disk full")

    art = RouterArtifact("knn", Broken(), SPEC, "package:p", ["a", "b"])
    with pytest.raises(RuntimeError):
        save_artifact(art, tmp_path / "router")
    assert list(tmp_path.iterdir()) == []
