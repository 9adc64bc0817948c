"""The router's per-query early exit: sure queries are decided by the probe at its layer,
the rest continue to the full-depth head, and only those pay for the deep layers."""

import numpy as np

from router_model import Router, SpecialistProfile
from router_model.backbone import Stage
from router_model.early_exit import EarlyExit, exits, margins
from router_model.heads import LinearHead, NearestCentroidHead

# shallow features: [code-ness, math-ness]; deep features: a clean one-hot per specialist
SHALLOW = {
    "sort a list": [1.0, 0.0],
    "add 2 and 3": [0.0, 1.0],
    "sum a list": [0.5, 0.5],
    "reverse a list": [0.6, 0.4],
}
DEEP = {
    "sort a list": [1.0, 0.0],
    "add 2 and 3": [0.0, 1.0],
    "sum a list": [0.0, 1.0],
    "reverse a list": [0.0, 1.0],
}


class Backbone:
    """Stands in for the router LLM's two stages, counting the rows run deep."""

    def __init__(self) -> None:
        self.deep_rows: list[str] = []

    def stage(self, queries: list[str]) -> Stage:
        def rest(rows: list[int]) -> np.ndarray:
            self.deep_rows += [queries[i] for i in rows]
            return np.array([DEEP[queries[i]] for i in rows], dtype=np.float32)

        return Stage(np.array([SHALLOW[q] for q in queries], dtype=np.float32), rest)

    def embed(self, queries: list[str]) -> np.ndarray:
        return np.array([DEEP[q] for q in queries], dtype=np.float32)


def probe() -> LinearHead:
    """Scores [code, math] as the shallow features themselves (identity ridge fit)."""
    head = LinearHead(l2=1e-9)
    x = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [1.0, 1.0]])
    head.fit_scores(x, x.copy(), np.zeros(4, dtype=int))
    return head


PROFILES = [SpecialistProfile("code", "c", ["c"]), SpecialistProfile("math", "m", ["m"])]


def centroids(*examples: list[float]) -> NearestCentroidHead:
    head = NearestCentroidHead(temperature=0.05)
    head.fit_examples([np.array([e]) for e in examples])
    return head


def router(
    backbone: Backbone, min_margin: float, columns=(0, 1), agree: NearestCentroidHead | None = None
) -> Router:
    deep = centroids([1.0, 0.0], [0.0, 1.0])
    exit_ = EarlyExit(backbone.stage, probe(), list(columns), 2, min_margin, "linear", agree)
    return Router(
        backbone.embed, deep, PROFILES, head_name="nearest_centroid", layer=18, early_exit=exit_
    )


def test_sure_queries_exit_and_only_the_unsure_run_deep():
    backbone = Backbone()
    decisions = router(backbone, 0.5).route_batch(["sort a list", "sum a list", "add 2 and 3"])
    assert [d.choice for d in decisions] == ["code", "math", "math"]
    assert [d.layer for d in decisions] == [2, 18, 2]
    assert [d.head for d in decisions] == ["linear", "nearest_centroid", "linear"]
    assert backbone.deep_rows == ["sum a list"]  # the tie went deep, alone
    assert decisions[1].as_dict()["layer"] == 18


def test_margin_zero_exits_everything_and_above_one_nothing():
    backbone = Backbone()
    everything = router(backbone, 0.0).route_batch(["sort a list", "add 2 and 3"])
    assert [d.layer for d in everything] == [2, 2] and backbone.deep_rows == []
    nothing = router(backbone, 1.0 + 1e-6).route_batch(["sort a list", "add 2 and 3"])
    assert [d.layer for d in nothing] == [18, 18]
    assert backbone.deep_rows == ["sort a list", "add 2 and 3"]


def test_probe_columns_map_to_specialists():
    # the probe scores [math, code]: columns pick specialist i's column
    backbone = Backbone()
    decisions = router(backbone, 0.5, columns=(1, 0)).route_batch(["sort a list"])
    assert decisions[0].choice == "math" and decisions[0].layer == 2


def test_a_second_opinion_that_agrees_lets_an_unsure_query_exit():
    # "reverse a list" leads by 0.2 only: alone it runs deep, where it is math
    backbone = Backbone()
    alone = router(backbone, 0.5).route_batch(["reverse a list"])
    assert [(d.choice, d.layer) for d in alone] == [("math", 18)]
    # a few-shot head on the same shallow states that also says code: it exits as code
    backbone = Backbone()
    same = router(backbone, 0.5, agree=centroids([1.0, 0.0], [0.0, 1.0]))
    decisions = same.route_batch(["reverse a list", "sort a list"])
    assert [(d.choice, d.layer, d.head) for d in decisions] == [("code", 2, "linear")] * 2
    assert backbone.deep_rows == []
    # one that says math instead: no agreement, so it runs deep; a sure query still exits
    backbone = Backbone()
    other = router(backbone, 0.5, agree=centroids([0.0, 1.0], [1.0, 0.0]))
    decisions = other.route_batch(["reverse a list", "sort a list"])
    assert [(d.choice, d.layer) for d in decisions] == [("math", 18), ("code", 2)]
    assert backbone.deep_rows == ["reverse a list"]


def test_exits_by_margin_or_agreement():
    quality = np.array([[0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    second = np.array([[0.0, 1.0], [0.7, 0.3], [0.9, 0.1]])
    assert exits(quality, 0.5).tolist() == [True, False, False]
    assert exits(quality, 0.5, second).tolist() == [True, True, False]
    assert exits(quality, 1.0 + 1e-6, second).tolist() == [False, True, False]


def test_margins():
    quality = np.array([[0.9, 0.2, 0.1], [0.5, 0.5, 0.0], [0.0, 0.3, 0.7]])
    np.testing.assert_allclose(margins(quality), [0.7, 0.0, 0.4])
    assert margins(np.array([[0.3]]))[0] == np.inf


def test_a_router_without_early_exit_decides_everything_at_full_depth():
    backbone = Backbone()
    with_exit = router(backbone, 0.5)
    plain = Router(backbone.embed, with_exit.head, PROFILES, head_name="nearest_centroid", layer=18)
    decisions = plain.route_batch(["sort a list", "sum a list"])
    assert [d.layer for d in decisions] == [18, 18]
    assert [d.head for d in decisions] == ["nearest_centroid"] * 2
    assert backbone.deep_rows == []  # the one-pass embedding, no stages
