"""What the prior head gives a query of a task it never saw (``router_model.fallback``),
and the yardstick that judges it: each table left out in turn (``leave_one_table_out``)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from router_model import fallback
from router_model.fallback import DEFAULT, Fallback
from router_model.prior import PriorHead
from router_model.scores import ScoreTable
from router_model.train import leave_one_table_out, stratified_folds, train_head


def test_the_global_share_is_a_switch_or_a_ramp():
    distance = np.array([0.0, 0.5, 0.75, 1.0, 2.0])
    hard = Fallback(far=1.0, blend=0.0, temperature=1.0)
    assert hard.global_share(distance).tolist() == [0, 0, 0, 0, 1]
    ramp = Fallback(far=1.0, blend=0.5, temperature=1.0)
    assert ramp.global_share(distance).tolist() == [0, 0, 0.5, 1, 1]


def test_the_prior_mixes_the_groups_by_a_softened_chance_and_the_global_table_by_distance():
    tables = np.array([[0.9, 0.1], [0.2, 0.8]])
    world = tables.mean(axis=0)
    logits = np.array([[2.0, 0.0], [2.0, 0.0]])
    near_far = np.array([0.1, 5.0])
    sharp = Fallback(far=1.0, blend=0.0, temperature=1.0).prior(logits, near_far, tables, world)
    soft = Fallback(far=1.0, blend=0.0, temperature=4.0).prior(logits, near_far, tables, world)
    p_sharp = np.exp(2.0) / (np.exp(2.0) + 1.0)
    np.testing.assert_allclose(sharp[0], p_sharp * tables[0] + (1 - p_sharp) * tables[1], 1e-5)
    assert abs(soft[0][0] - world[0]) < abs(sharp[0][0] - world[0])  # nearer the mean
    np.testing.assert_allclose(sharp[1], world, atol=1e-6)  # far: the global table alone


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ((0.0, 0.0, 1.0, 0.0), "far 0 must be above 0, or be -1"),
        ((1.0, 1.0, 1.0, 0.0), "blend 1 must lie in [0, 1)"),
        ((1.0, -0.5, 1.0, 0.0), "blend -0.5 must lie in [0, 1)"),
        ((1.0, 0.0, 0.9, 0.0), "temperature 0.9 must be at least 1"),
        ((1.0, 0.0, 1.0, 1.5), "far_weight 1.5 must lie in [0, 1]"),
    ],
)
def test_out_of_range_values_are_one_clear_error(values, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Fallback.check(*values)
    with pytest.raises(ValueError, match="prior: "):
        PriorHead(**dict(zip(fallback.NAMES, values, strict=True)))


def test_a_query_that_falls_back_takes_its_residual_at_the_far_weight():
    tables = np.array([[0.9, 0.1], [0.2, 0.8]])
    world = tables.mean(axis=0)
    logits = np.array([[9.0, 0.0], [9.0, 0.0]])
    near_far = np.array([0.1, 5.0])
    residual = np.array([[-0.4, 0.4], [-0.4, 0.4]])  # the neighbours favour model 1
    parts = logits, near_far, tables, world, residual
    ramp = Fallback(far=1.0, blend=0.0, temperature=1.0, far_weight=0.5)
    assert ramp.residual_weight(near_far, 0.1)[:, 0].tolist() == pytest.approx([0.1, 0.5])
    got = ramp.predict(parts, 0.1)
    np.testing.assert_allclose(got[1], world + 0.5 * residual[1], atol=1e-6)
    assert got[0].argmax() == 0 and got[1].argmax() == 1  # the group's pick; the residual's
    without = Fallback(far=1.0, blend=0.0, temperature=1.0, far_weight=0.0).predict(parts, 0.1)
    np.testing.assert_allclose(without[1], world, atol=1e-6)


def tasks(seed=0, dim=12, n=150):
    """Four tables. In each of three, "its own" model is best (0.8 against 0.3); model 3 is
    the good all-rounder (0.6 everywhere), the best single model overall. The fourth table
    (rows near table 0's, a task that looks like it) is one only the all-rounder answers."""
    rng = np.random.default_rng(seed)
    x, earned, groups = [], [], []
    for g in range(4):
        centre = np.eye(dim)[min(g, 2)] * 4 + (np.eye(dim)[5] * 1.5 if g == 3 else 0)
        x.append(centre + rng.normal(size=(n, dim)))
        credit = np.full((n, 4), 0.3)
        credit[:, 3] = 0.6
        if g < 3:
            credit[:, g] = 0.8
        else:
            credit[:, :3] = 0.0
        earned.append(credit)
        groups.append(np.full(n, g))
    return np.concatenate(x), np.concatenate(earned), np.concatenate(groups)


def score_tables(earned, groups):
    models = [f"m{j}" for j in range(earned.shape[1])]
    return [
        ScoreTable(
            f"t{g}",
            [f"q{g}-{i}" for i in range(int((groups == g).sum()))],
            models,
            earned[groups == g],
            ["fraction"] * int((groups == g).sum()),
        )
        for g in np.unique(groups)
    ]


def test_leaving_a_table_out_judges_it_against_the_best_single_model_of_the_others():
    x, earned, groups = tasks()
    tables = score_tables(earned, groups)
    never = {"residual_weight": 0.0, "far": 50.0, "temperature": 1.0}
    found = leave_one_table_out("prior", never, tables, x)
    t3 = found["files"]["t3"]
    # the fourth task looks like table 0: a head that never falls back sends it to m0
    assert t3["router"] < 0.05
    assert t3["best_single_model"] == "m3" and t3["best_single"] == pytest.approx(0.6)
    assert t3["table_best_model"] == "m3" and t3["table_best"] == pytest.approx(0.6)
    assert "t3" in found["average"]["tables_below_best_single"]
    means = [found["files"][t.name]["router"] for t in tables]
    assert found["average"]["router"] == pytest.approx(np.mean(means))
    with pytest.raises(ValueError, match="needs at least two score tables, given 1"):
        leave_one_table_out("prior", never, tables[:1], x[groups == 0])


def test_a_fallback_chosen_by_leaving_tables_out_rescues_the_task_it_never_saw():
    x, earned, groups = tasks()
    tables = score_tables(earned, groups)
    auto = {"residual_weight": 0.0, "far": -1.0, "blend": -1.0, "temperature": -1.0}
    chosen = leave_one_table_out("prior", auto, tables, x)
    off = {"residual_weight": 0.0, "far": 50.0, "temperature": 1.0}
    never = leave_one_table_out("prior", off, tables, x)
    # a left-out table far from the rest: the global table's pick, the all-rounder
    for name in ("t0", "t1", "t2"):
        assert chosen["files"][name]["router"] == pytest.approx(0.6)
        assert never["files"][name]["router"] <= 0.6
    # the task that looks like table 0 is partly caught; without a fallback, never
    assert chosen["files"]["t3"]["router"] > never["files"]["t3"]["router"] + 0.05
    assert chosen["average"]["router"] > never["average"]["router"] + 0.05


def test_the_choice_is_the_best_mean_of_its_grid_and_says_what_it_measured():
    x, earned, groups = tasks(seed=1)
    head = PriorHead(residual_weight=0.0)
    picked, report = fallback.choose(
        lambda train, test: head._fit_parts(x, earned, groups, train, test),
        earned, groups, {"far": -1.0, "blend": 0.0, "temperature": -1.0, "far_weight": -1.0},
        stratified_folds(groups, 5, seed=2),
    )  # fmt: skip
    grid = report["fallback_grid"]
    axes = ("far", "temperature", "far_weight")
    assert len(grid) == np.prod([len(fallback.GRID[a]) for a in axes])
    assert {g["blend"] for g in grid} == {0.0}  # a value given is kept
    best = max(g["left_out"] + g["stratified"] for g in grid)
    mine = next(g for g in grid if all(g[a] == getattr(picked, a) for a in axes))
    assert mine["left_out"] + mine["stratified"] == pytest.approx(best, abs=2e-4)
    assert report["fallback_criterion"] == "mean of leave-one-table-out and stratified accuracy"


def test_with_fewer_than_three_tables_the_defaults_stand_and_training_says_why():
    x, earned, groups = tasks()
    two = groups < 2
    head = PriorHead(residual_weight=0.0, far=-1.0, blend=0.5, temperature=-1.0)
    head.fit_scores(x[two], earned[two], groups[two])
    assert head.fallback == Fallback(DEFAULT.far, 0.5, DEFAULT.temperature, DEFAULT.far_weight)
    assert "too few to leave one out" in head.fit_report()["fallback_criterion"]


def test_training_reports_both_yardsticks_and_the_artifact_keeps_the_fallback():
    x, earned, groups = tasks()
    tables = score_tables(earned, groups)
    head, meta = train_head("prior", {"residual_weight": 0.0}, tables, x, folds=2, loto=True)
    assert meta["cross_validation"]["folds"] == 2
    assert set(meta["leave_one_table_out"]["files"]) == {"t0", "t1", "t2", "t3"}
    again = PriorHead.from_state(head.params, head.state())
    assert again.fallback == head.fallback
    np.testing.assert_allclose(again.predict(x[:20]), head.predict(x[:20]), atol=1e-6)
    old = {k: v for k, v in head.state().items() if k != "fallback"}  # an older artifact
    legacy = PriorHead.from_state({**head.params, "far": 1.5}, old)
    assert legacy.fallback == Fallback(1.5, 0.0, 1.0)
    # an artifact saved before far_weight: three values, and no residual where it falls back
    three = {**head.state(), "fallback": np.array([0.3, 0.0, 2.0])}
    assert PriorHead.from_state(head.params, three).fallback == Fallback(0.3, 0.0, 2.0, 0.0)


def test_the_knn_head_left_one_table_out_has_no_hole_in_its_priors():
    from router_model.heads import KnnHead

    x, earned, groups = tasks()
    kept = groups != 2  # tables 0, 1 and 3: the numbers have a hole where 2 was
    head = KnnHead(k=10)
    head.fit_scores(x[kept], earned[kept], groups[kept])
    predicted = head.predict(x[~kept])
    assert np.isfinite(predicted).all() and len(head.prior) == 3
