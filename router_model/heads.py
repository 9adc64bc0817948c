"""Routing heads, registered by name. A head turns query embeddings into predicted quality.

Every head's ``predict`` returns one row per query with a value in [0, 1] per model: the
quality (expected credit) it predicts that model would earn on that query.

Few-shot heads (``kind = "examples"``) are fitted from each specialist's example queries in
config, so a deployment with no score table still routes. Learned heads
(``kind = "scores"``) are fitted from score tables by ``mixserve router train`` and saved in
a router artifact (``state`` / ``from_state``).
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import numpy as np

Params = dict[str, float | int]


class RoutingHead(abc.ABC):
    kind: ClassVar[str]
    defaults: ClassVar[Params] = {}

    def __init__(self, **params: float | int) -> None:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ValueError(f"unknown parameter(s) for this head: {', '.join(unknown)}")
        self.params: Params = {**self.defaults, **params}

    @abc.abstractmethod
    def predict(self, queries: np.ndarray) -> np.ndarray:
        """Rows of predicted quality in [0, 1], one column per model."""

    def state(self) -> dict[str, np.ndarray]:
        """Arrays that, with ``params``, rebuild the fitted head."""
        raise NotImplementedError(f"{type(self).__name__} is not saved in artifacts")

    @classmethod
    def from_state(cls, params: Params, arrays: dict[str, np.ndarray]) -> RoutingHead:
        head = cls(**params)
        head.load_state(arrays)
        return head

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        raise NotImplementedError(f"{type(self).__name__} is not saved in artifacts")


class FewShotHead(RoutingHead):
    kind = "examples"

    @abc.abstractmethod
    def fit_examples(self, examples: list[np.ndarray]) -> None:
        """``examples[j]`` holds the example embeddings of specialist ``j``."""


class LearnedHead(RoutingHead):
    kind = "scores"

    @abc.abstractmethod
    def fit_scores(self, queries: np.ndarray, earned: np.ndarray, groups: np.ndarray) -> None:
        """``earned[i, j]``: credit model ``j`` earned on query ``i``; ``groups[i]``: its table."""

    def fit_report(self) -> dict[str, Any]:
        """What fitting chose and anything the trainer should be told (``notes``)."""
        return {}


_HEADS: dict[str, type[RoutingHead]] = {}


def register_head(name: str) -> Any:
    def add(cls: type[RoutingHead]) -> type[RoutingHead]:
        if name in _HEADS:
            raise ValueError(f"routing head {name!r} is already registered")
        _HEADS[name] = cls
        return cls

    return add


def head_names(kind: str | None = None) -> list[str]:
    return sorted(n for n, c in _HEADS.items() if kind is None or c.kind == kind)


def head_class(name: str) -> type[RoutingHead]:
    try:
        return _HEADS[name]
    except KeyError:
        raise ValueError(
            f"unknown routing head {name!r}; known: {', '.join(head_names())}"
        ) from None


def build_head(name: str, **params: float | int) -> RoutingHead:
    return head_class(name)(**params)


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def _require(arrays: dict[str, np.ndarray], *names: str) -> list[np.ndarray]:
    missing = [n for n in names if n not in arrays]
    if missing:
        raise ValueError(f"head state lacks {', '.join(missing)}")
    return [np.asarray(arrays[n]) for n in names]


@register_head("nearest_centroid")
class NearestCentroidHead(FewShotHead):
    """Each specialist is the mean of its centred, unit-length example embeddings.

    Scores are the softmax of a query's cosine to each centroid over ``temperature``.
    Centring by the mean of all examples removes the direction every LM hidden state
    shares (anisotropy), without which all cosines sit near 1.
    """

    defaults: ClassVar[Params] = {"temperature": 0.05}

    def fit_examples(self, examples: list[np.ndarray]) -> None:
        if not examples or any(len(e) == 0 for e in examples):
            raise ValueError("every specialist needs at least one example")
        self.center = np.concatenate(examples).mean(axis=0)
        self.centroids = np.stack([unit(unit(e - self.center).mean(axis=0)) for e in examples])

    def predict(self, queries: np.ndarray) -> np.ndarray:
        sims = unit(queries - self.center) @ self.centroids.T
        return softmax(sims / float(self.params["temperature"]))


@register_head("knn")
class KnnHead(LearnedHead):
    """k nearest training queries, shrunk toward the prior of the tables they come from.

    predicted = (k · mean credit of the neighbours + w · prior) / (k + w), where prior is
    the mean credit per model of each training table, weighted by how many neighbours
    come from it. The prior is what "send each task to its best model" knows; the
    neighbours override it only where they agree strongly (``prior_weight`` = w).
    """

    defaults: ClassVar[Params] = {"k": 50, "prior_weight": 100.0}

    def fit_scores(self, queries: np.ndarray, earned: np.ndarray, groups: np.ndarray) -> None:
        k = int(self.params["k"])
        if not 1 <= k <= len(queries):
            raise ValueError(f"knn: k={k} needs at least {k} training queries")
        self.center = queries.mean(axis=0)
        self.points = unit(queries - self.center).astype(np.float32)
        self.earned = earned.astype(np.float32)
        # numbered 0..n-1 in order: a table left out (leave one table out) leaves no hole
        names, inverse = np.unique(groups, return_inverse=True)
        self.groups = inverse.astype(np.int64)
        self.prior = np.stack(
            [self.earned[self.groups == g].mean(axis=0) for g in range(len(names))]
        )

    def predict(self, queries: np.ndarray) -> np.ndarray:
        k, weight = int(self.params["k"]), float(self.params["prior_weight"])
        sims = unit(queries - self.center).astype(np.float32) @ self.points.T
        near = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        local = self.earned[near].mean(axis=1)
        counts = np.stack(
            [np.bincount(row, minlength=len(self.prior)) for row in self.groups[near]]
        )
        prior = (counts / k) @ self.prior
        return np.clip((k * local + weight * prior) / (k + weight), 0.0, 1.0)

    def state(self) -> dict[str, np.ndarray]:
        return {
            "center": self.center,
            "points": self.points.astype(np.float16),
            "earned": self.earned,
            "groups": self.groups,
            "prior": self.prior,
        }

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.center, points, self.earned, self.groups, self.prior = _require(
            arrays, "center", "points", "earned", "groups", "prior"
        )
        self.points = points.astype(np.float32)


# the shrinkages the linear head tries at ``l2`` -1, quarter decades. RouterDC's five and
# RouteLLM's two train tables at layer 1 both choose 10^4; the fixed 10^3 it replaced lost
# 0.023 of RouteLLM's APGR (benchmarks/router_loto.py) and 0.011 of RouterDC's 5-fold
# accuracy (docs/benchmarks.md)
L2_GRID = tuple(float(a) for a in np.logspace(-2, 6, 33))


@register_head("linear")
class LinearHead(LearnedHead):
    """A ridge-regression probe: standardised embedding → credit of each model.

    ``l2`` -1 (the default) chooses the shrinkage over ``L2_GRID`` by the exact
    leave-one-out squared error (scikit-learn's ``RidgeCV``, one fit for the whole grid)."""

    defaults: ClassVar[Params] = {"l2": -1.0}

    def __init__(self, **params: float | int) -> None:
        super().__init__(**params)
        l2 = float(self.params["l2"])
        if l2 != -1.0 and not l2 > 0.0:
            raise ValueError(f"linear: l2 {l2:g} must be above 0, or be -1 to have it chosen")
        self.chosen: dict[str, Any] = {}

    def fit_scores(self, queries: np.ndarray, earned: np.ndarray, groups: np.ndarray) -> None:
        self.mean = queries.mean(axis=0)
        self.scale = queries.std(axis=0) + 1e-6
        x = self._design(queries)
        l2 = float(self.params["l2"])
        if l2 == -1.0:
            if len(queries) < 3:
                raise ValueError("linear: choosing l2 needs at least 3 training queries")
            from sklearn.linear_model import RidgeCV

            l2 = float(RidgeCV(alphas=L2_GRID).fit(x[:, :-1], earned).alpha_)
            self.chosen = {"l2": l2, "l2_criterion": "leave-one-out squared error"}
        reg = l2 * np.eye(x.shape[1])
        reg[-1, -1] = 0.0  # do not shrink the intercept
        self.weights = np.linalg.solve(x.T @ x + reg, x.T @ earned)

    def fit_report(self) -> dict[str, Any]:
        return dict(self.chosen)

    def _design(self, queries: np.ndarray) -> np.ndarray:
        x = (queries - self.mean) / self.scale
        return np.hstack([x, np.ones((len(x), 1))])

    def predict(self, queries: np.ndarray) -> np.ndarray:
        return np.clip(self._design(queries) @ self.weights, 0.0, 1.0)

    def state(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "scale": self.scale, "weights": self.weights}

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.mean, self.scale, self.weights = _require(arrays, "mean", "scale", "weights")
