"""The ``prior`` head: the query's group's table, recovered from the embedding, plus a
residual only as far as cross-validation finds it pays."""

import numpy as np
import pytest

from router_model.heads import build_head, head_class
from router_model.prior import PriorHead


def grouped(n_per=120, dim=16, seed=0, signal=0.0):
    """Three groups far apart; in group g model g is best on average. With ``signal``, half
    of group 0 (a sub-cluster of it) earns more from model 2 than from model 0."""
    rng = np.random.default_rng(seed)
    centres = np.eye(3, dim) * 4
    x, earned, groups = [], [], []
    for g in range(3):
        points = centres[g] + 0.5 * rng.normal(size=(n_per, dim))
        credit = rng.binomial(1, 0.3, size=(n_per, 3)).astype(np.float32)
        credit[:, g] = rng.binomial(1, 0.7, size=n_per)
        if g == 0 and signal:
            side = np.arange(n_per) % 2 == 0
            points[side, 5] += 3.0
            credit[side, 2] = rng.binomial(1, min(1.0, 0.7 + signal), size=int(side.sum()))
            credit[side, 0] = rng.binomial(1, 0.3, size=int(side.sum()))
        x.append(points)
        earned.append(credit)
        groups.append(np.full(n_per, g))
    return np.concatenate(x), np.concatenate(earned), np.concatenate(groups)


def one_table(seed, n, strong, weak_near, weak_far, dim=16):
    """One table of two models: model 0 right with chance ``strong`` everywhere; model 1
    with ``weak_near`` on a sub-cluster (every other query, returned as a mask) and
    ``weak_far`` on the rest."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim))
    near = np.arange(n) % 2 == 0
    x[near, 3] += 3.0
    earned = np.zeros((n, 2), dtype=np.float32)
    earned[:, 0] = rng.binomial(1, strong, size=n)
    earned[:, 1] = np.where(
        near, rng.binomial(1, weak_near, size=n), rng.binomial(1, weak_far, size=n)
    )
    return x, earned, near


# the synthetic groups are round clouds, whose rows lie up to their whole reach from the
# centre (a real embedding's lie mostly near it, where the default `far` was chosen):
# these tests of the group prior keep every row of a group inside it
INSIDE = {"far": 3.0, "temperature": 1.0}


def accuracy(predicted, earned, groups):
    picked = earned[np.arange(len(earned)), predicted.argmax(axis=1)]
    return np.mean([picked[groups == g].mean() for g in np.unique(groups)])


def test_with_no_residual_it_is_the_prior_of_the_querys_own_group():
    x, earned, groups = grouped()
    head = build_head("prior", residual_weight=0.0, **INSIDE)
    head.fit_scores(x, earned, groups)
    picks = head.predict(x).argmax(axis=1)
    assert (picks == groups).mean() > 0.98  # each group to its own best model, by embedding
    tables = np.stack([earned[groups == g].mean(axis=0) for g in range(3)])
    one = head.predict(x[:1])[0]  # a query deep in group 0: that group's table
    assert np.allclose(one, tables[0], atol=0.02)


def test_cross_validation_adds_the_residual_only_where_it_pays():
    x, earned, groups = grouped(seed=1)
    noise = build_head("prior")
    noise.fit_scores(x, earned, groups)
    assert noise.chosen["residual_weight"] <= 0.1  # noise neighbours: (almost) the prior
    x, earned, groups = grouped(n_per=400, seed=2, signal=0.3)
    real = build_head("prior", **INSIDE)
    real.fit_scores(x, earned, groups)
    assert real.chosen["residual_weight"] >= 0.3
    prior_only = build_head("prior", residual_weight=0.0, **INSIDE)
    prior_only.fit_scores(x, earned, groups)
    assert accuracy(real.predict(x), earned, groups) > accuracy(
        prior_only.predict(x), earned, groups
    )
    scores = real.chosen["cv_accuracy_by_weight"]
    assert max(scores.values()) == scores[f"{real.chosen['residual_weight']:g}"]


def test_when_accuracy_cannot_tell_the_weights_apart_squared_error_chooses():
    """One table where the strong model (0) is best everywhere, as RouteLLM's GPT-4: the
    pick at no cost is model 0 at every weight, so accuracy is flat. On a sub-cluster the
    weak model does as well; a cost trade-off needs the predicted gap to show that, and
    the prior alone gives every query the same gap."""
    x, earned, easy = one_table(seed=6, n=600, strong=0.9, weak_near=0.85, weak_far=0.2)
    head = build_head("prior", **INSIDE)
    head.fit_scores(x, earned, np.zeros(len(x), dtype=np.int64))
    assert head.chosen["criterion"] == "squared error" and head.chosen["residual_weight"] > 0
    by_weight = head.chosen["cv_accuracy_by_weight"]
    assert by_weight[f"{head.chosen['residual_weight']:g}"] >= by_weight["0"]
    gap = head.predict(x) @ np.array([1.0, -1.0])
    assert gap[easy].mean() < gap[~easy].mean() - 0.2  # the easy half ranks for the weak model
    prior = build_head("prior", residual_weight=0.0, **INSIDE)
    prior.fit_scores(x, earned, np.zeros(len(x), dtype=np.int64))
    assert np.ptp(prior.predict(x) @ np.array([1.0, -1.0])) < 1e-6


def test_a_residual_that_costs_accuracy_is_not_taken_for_a_lower_error():
    """Noise neighbours: the residual lowers no error reliably and risks the picks."""
    x, earned, groups = grouped(seed=7)
    head = build_head("prior")
    head.fit_scores(x, earned, groups)
    scores = head.chosen["cv_accuracy_by_weight"]
    assert scores[f"{head.chosen['residual_weight']:g}"] >= scores["0"]
    assert head.chosen["criterion"] in ("prior", "squared error")


def test_the_lowest_squared_error_is_not_taken_where_it_costs_accuracy():
    """One table; model 1 is nearly as good as model 0 on half the queries and far worse
    on the rest. The residual lowers the squared error most at full weight, but there its
    noisy estimates flip near-ties to the slightly worse model: the rule stops at a weight
    whose inner-CV accuracy is the prior's."""
    x, earned, _ = one_table(seed=0, n=800, strong=0.6, weak_near=0.58, weak_far=0.2)
    head = build_head("prior", **INSIDE)
    head.fit_scores(x, earned, np.zeros(len(x), dtype=np.int64))
    accuracy_at = head.chosen["cv_accuracy_by_weight"]
    error_at = head.chosen["cv_squared_error_by_weight"]
    chosen = f"{head.chosen['residual_weight']:g}"
    lowest = min(error_at, key=error_at.get)
    assert head.chosen["criterion"] == "squared error" and chosen != "0"
    assert accuracy_at[chosen] >= accuracy_at["0"]
    assert accuracy_at[lowest] < accuracy_at["0"]  # the data does test the accuracy guard
    kept = [w for w in error_at if accuracy_at[w] >= accuracy_at["0"]]
    assert chosen == min(kept, key=error_at.get)


def test_a_query_far_from_every_group_gets_the_global_table_and_says_so():
    x, earned, groups = grouped()
    head = build_head("prior", residual_weight=0.0, **INSIDE, far_weight=0.0)
    head.fit_scores(x, earned, groups)
    far = np.zeros((1, x.shape[1]))
    far[0, -1] = 40.0  # along a direction no group lies in
    (explained,) = head.explain(far)
    assert explained["global_prior"] and explained["distance"] > head.params["far"]
    tables = np.stack([earned[groups == g].mean(axis=0) for g in range(3)])
    assert np.allclose(head.predict(far)[0], tables.mean(axis=0), atol=1e-5)
    # at far_weight 1 (the default), the residual of its nearest training queries on top
    residual = build_head("prior", residual_weight=0.0, **INSIDE, far_weight=1.0)
    residual.fit_scores(x, earned, groups)
    np.testing.assert_allclose(
        residual.predict(far)[0],
        np.clip(tables.mean(axis=0) + residual._residual(residual._groups_of(far)[0])[0], 0, 1),
        atol=1e-5,
    )
    assert not np.allclose(residual.predict(far)[0], head.predict(far)[0], atol=1e-3)
    (near,) = head.explain(x[:1])
    assert not near["global_prior"] and near["group"] == 0 and near["group_probability"] > 0.9


def test_groups_from_clusters_need_no_table_labels():
    x, earned, groups = grouped(seed=3)
    head = build_head("prior", residual_weight=0.0, clusters=3, **INSIDE)
    head.fit_scores(x, earned, np.zeros(len(x), dtype=np.int64))  # one table, no labels
    assert accuracy(head.predict(x), earned, groups) > 0.6  # the clusters are the groups
    assert len(head.tables) == 3


def test_on_clusters_the_fallback_fires_only_far_beyond_them_unless_set():
    from router_model.fallback import DEFAULT
    from router_model.prior import ON_CLUSTERS

    x, earned, groups = grouped(seed=3)
    one = np.zeros(len(x), dtype=np.int64)
    clustered = build_head("prior", residual_weight=0.0, clusters=3)
    clustered.fit_scores(x, earned, one)
    assert clustered.fallback == ON_CLUSTERS
    assert ON_CLUSTERS.far > DEFAULT.far and ON_CLUSTERS.far_weight == 0.0
    set_far = build_head("prior", residual_weight=0.0, clusters=3, far=0.5)
    set_far.fit_scores(x, earned, one)
    assert set_far.fallback.far == 0.5 and set_far.fallback.temperature == ON_CLUSTERS.temperature
    tasks = build_head("prior", residual_weight=0.0)  # groups are the tables: the defaults
    tasks.fit_scores(x, earned, groups)
    assert tasks.fallback == DEFAULT


def test_groups_too_small_are_named_and_fall_back_to_the_global_table():
    x, earned, groups = grouped(n_per=30)
    head = build_head("prior", residual_weight=0.0, min_group=40, far_weight=0.0)
    head.fit_scores(x, earned, groups)
    assert head.notes and "global table" in head.notes[-1]
    assert np.allclose(head.predict(x[:3]), earned.mean(axis=0), atol=1e-5)
    x, earned, groups = grouped(n_per=60)
    some = build_head("prior", residual_weight=0.0, min_group=25)
    groups[:20] = 3  # a fourth group of 20 rows
    some.fit_scores(x, earned, groups)
    assert some.notes == [
        "1 group(s) under min_group=25 rows: their queries count toward the global table only"
    ]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"residual_weight": 1.5}, "residual_weight 1.5 must lie in [0, 1], or be -1"),
        ({"residual_weight": -0.5}, "residual_weight -0.5 must lie in [0, 1]"),
        ({"k": 0}, "k must be a whole number of at least 1"),
        ({"clusters": 2.5}, "clusters must be a whole number"),
        ({"far": 0}, "far 0 must be above 0, or be -1 to have it chosen"),
        ({"far": -2}, "far -2 must be above 0"),
        ({"blend": 1.0}, "blend 1 must lie in [0, 1), or be -1"),
        ({"temperature": 0.5}, "temperature 0.5 must be at least 1, or be -1"),
        ({"far_weight": -0.5}, "far_weight -0.5 must lie in [0, 1], or be -1"),
        ({"c": 0}, "c must be above 0"),
        ({"depth": 3}, "unknown parameter(s) for this head: depth"),
    ],
)
def test_bad_parameters_are_one_clear_error(params, message):
    with pytest.raises(ValueError) as info:
        head_class("prior")(**params)
    assert message in str(info.value)


def test_state_round_trip_predicts_the_same():
    x, earned, groups = grouped(seed=4, signal=0.3)
    head = build_head("prior")
    head.fit_scores(x, earned, groups)
    again = PriorHead.from_state(head.params, head.state())
    assert np.allclose(again.predict(x), head.predict(x), atol=1e-6)


def test_the_routing_decision_names_the_group_and_its_distance():
    from router_model import Router, SpecialistProfile

    x, earned, groups = grouped(seed=5)
    head = build_head("prior", residual_weight=0.0, **INSIDE)
    head.fit_scores(x, earned, groups)
    far = np.zeros(x.shape[1])
    far[-1] = 40.0
    vectors = {"near": x[0], "far": far}
    profiles = [SpecialistProfile(f"m{i}", "", []) for i in range(3)]
    router = Router(
        lambda qs: np.stack([vectors[q] for q in qs]), head, profiles, head_name="prior"
    )
    near, distant = (d.as_dict() for d in router.route_batch(["near", "far"]))
    assert near["choice"] == "m0" and near["group"]["group"] == 0
    assert near["group"]["global_prior"] is False
    assert distant["group"]["global_prior"] is True and distant["group"]["distance"] > 1.5
    knn = build_head("knn", k=10)
    knn.fit_scores(x, earned, groups)
    plain = Router(lambda qs: np.stack([vectors[q] for q in qs]), knn, profiles)
    assert "group" not in plain.route("near").as_dict()
