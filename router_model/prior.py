"""The ``prior`` head: the prior of the query's group, plus a per-query residual shrunk
toward it by an amount cross-validation chooses.

predicted(x) = prior(x) + w · residual(x), where
- ``prior(x)`` is the mean credit table of the query's group (a training table, or a
  k-means cluster of the embeddings with ``clusters`` > 0), the group recovered from the
  embedding alone: a multinomial logistic regression gives p(group | x) and the prior is
  the tables mixed by it; a query of a task the head never saw, far from every group,
  gets the global table (the unweighted mean of the group tables, whose best model is
  the best single model) instead, and its residual at ``far_weight``: ``far``,
  ``blend``, ``temperature`` and ``far_weight`` say how (``router_model.fallback``:
  their defaults were chosen by leaving each RouterDC table out in turn; -1 chooses them
  so on the training tables; on k-means clusters, ``ON_CLUSTERS`` unless set);
- ``residual(x)`` is the mean, over the ``k`` nearest training queries, of how much each
  did better or worse than its own group's table;
- ``w`` in [0, 1] is ``residual_weight`` (for the queries within reach of a group), or
  (-1, the default) chosen by inner cross-validation on the training rows (accuracy and
  squared error as unweighted means over the tables):
  1. the weight whose gain in accuracy over the prior is largest among those at least two
     standard errors above zero;
  2. if none is, the weight with the lowest squared error between predicted and earned
     credit among those whose accuracy is no lower than the prior's, if its reduction is
     two standard errors above zero. Accuracy only sees the best model of each query; a
     cost trade-off also needs the gaps between models right (a score table where one
     model is best everywhere, RouteLLM's GPT-4 against Mixtral, leaves accuracy flat
     at every weight, and the prior alone ranks every query of a group alike);
  3. 0 otherwise.

At w = 0 it is the prior: "send each kind of question to its best model", which a learned
head without it fell below on held-out data. The CV gives the residual weight only when
the per-query signal pays on rows it did not see, and never at a cost in accuracy. Groups
with fewer than ``min_group`` rows are too small to estimate: their rows count toward the
global table only, and the head says so in ``notes``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from router_model import fallback
from router_model.fallback import Fallback
from router_model.heads import LearnedHead, Params, _require, register_head, unit

WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)  # residual weights the inner CV tries
FAR_QUANTILE = 99.0
# k-means clusters are not tasks: a query between clusters is no new task, and a fallback
# there flattens the per-query ranking a cost trade-off needs (RouteLLM, 32 clusters,
# 2-fold CV: APGR 0.630 without it against 0.562 with the defaults chosen on tasks, at
# layer 18; 0.620 against 0.615 at layer 1). On clusters the fallback's values not set
# are these: it fires only far beyond every cluster, and adds no residual there.
ON_CLUSTERS = Fallback(far=3.0, blend=0.0, temperature=1.0, far_weight=0.0)
# a residual weight is taken only when its inner-CV gain over the prior is this many
# standard errors above zero: a gain of a few rows is noise, and the prior is the safe side
SIGNIFICANT = 2.0


@register_head("prior")
class PriorHead(LearnedHead):
    defaults: ClassVar[Params] = {
        "k": 50,
        "residual_weight": -1.0,
        "clusters": 0,
        "min_group": 20,
        "far": fallback.DEFAULT.far,
        "blend": fallback.DEFAULT.blend,
        "temperature": fallback.DEFAULT.temperature,
        "far_weight": fallback.DEFAULT.far_weight,
        "folds": 5,
        "c": 1.0,
    }

    def __init__(self, **params: float | int) -> None:
        super().__init__(**params)
        self.given = frozenset(params)
        p = self.params
        w = float(p["residual_weight"])
        if w != -1.0 and not 0.0 <= w <= 1.0:
            raise ValueError(
                f"prior: residual_weight {w:g} must lie in [0, 1], or be -1 to have "
                "cross-validation choose it"
            )
        for name, low in (("k", 1), ("min_group", 1), ("folds", 2), ("clusters", 0)):
            value = p[name]
            if value != int(value) or value < low:
                raise ValueError(f"prior: {name} must be a whole number of at least {low}")
        Fallback.check(*(float(p[name]) for name in fallback.NAMES))
        if not float(p["c"]) > 0:
            raise ValueError("prior: c must be above 0")
        self.notes: list[str] = []
        self.chosen: dict[str, Any] = {}

    # -- fitting ---------------------------------------------------------------------
    def fit_scores(self, queries: np.ndarray, earned: np.ndarray, groups: np.ndarray) -> None:
        k = int(self.params["k"])
        if not 1 <= k <= len(queries):
            raise ValueError(f"prior: k={k} needs at least {k} training queries")
        labels = self._groups(queries, groups)
        self.chosen = {}
        wanted = {name: float(self.params[name]) for name in fallback.NAMES}
        if int(self.params["clusters"]):
            wanted.update(
                {n: getattr(ON_CLUSTERS, n) for n in fallback.NAMES if n not in self.given}
            )
        folds = _folds(groups, int(self.params["folds"]), seed=2)
        self.fallback, report = fallback.choose(
            lambda train, test: self._fit_parts(queries, earned, groups, train, test),
            earned,
            groups,
            wanted,
            folds,
        )
        self.chosen.update(report)
        weight = float(self.params["residual_weight"])
        if weight == -1.0:
            weight, report = self._choose_weight(queries, earned, groups, labels)
            self.chosen.update({"residual_weight": weight, **report})
        else:
            self.chosen["residual_weight"] = weight
        self._fit(queries, earned, labels)
        self.weight = np.float32(weight)

    def _unweighted(self) -> PriorHead:
        """A head of these parameters with no residual, for the inner fits."""
        return PriorHead(**{**self.params, "residual_weight": 0.0})

    def _fit_parts(
        self, queries: np.ndarray, earned: np.ndarray, tables: np.ndarray, train: np.ndarray,
        test: np.ndarray,
    ) -> fallback.Parts:  # fmt: skip
        """What a head fitted on the rows ``train`` makes of the rows ``test``."""
        inner = self._unweighted()
        inner._fit(queries[train], earned[train], inner._groups(queries[train], tables[train]))
        return inner._parts(queries[test])

    def _groups(self, queries: np.ndarray, tables: np.ndarray) -> np.ndarray:
        """Each row's group: its table, or its k-means cluster."""
        clusters = int(self.params["clusters"])
        if not clusters:
            return tables.astype(np.int64)
        if clusters > len(queries):
            raise ValueError(f"prior: {clusters} clusters for {len(queries)} training queries")
        from sklearn.cluster import KMeans

        model = KMeans(n_clusters=clusters, n_init=4, random_state=0)
        return model.fit_predict(unit(queries - queries.mean(axis=0))).astype(np.int64)

    def _fit(self, queries: np.ndarray, earned: np.ndarray, labels: np.ndarray) -> None:
        self.center = queries.mean(axis=0).astype(np.float32)
        points = unit(queries - self.center).astype(np.float32)
        names, counts = np.unique(labels, return_counts=True)
        kept = names[counts >= int(self.params["min_group"])]
        small = sorted(set(names.tolist()) - set(kept.tolist()))
        self.notes = (
            [
                f"{len(small)} group(s) under min_group={int(self.params['min_group'])} rows: "
                f"their queries count toward the global table only"
            ]
            if small
            else []
        )
        if len(kept):
            self.tables = np.stack([earned[labels == g].mean(axis=0) for g in kept])
            self.global_table = self.tables.mean(axis=0)
        else:
            self.notes.append("no group is large enough: the head is the global table")
            self.tables = earned.mean(axis=0, keepdims=True)
            self.global_table = self.tables[0]
        self.group_ids = kept.astype(np.int64) if len(kept) else np.array([-1])
        index = {int(g): i for i, g in enumerate(kept)}
        own = np.array([index.get(int(g), -1) for g in labels])
        # a row of a small group is measured against the global table
        base = np.where((own >= 0)[:, None], self.tables[np.maximum(own, 0)], self.global_table)
        self.points = points.astype(np.float16).astype(np.float32)  # as the artifact keeps them
        self.residuals = (earned - base).astype(np.float32)
        self._fit_classifier(points, own)
        members = [points[own == i] if len(kept) else points for i in range(len(self.tables))]
        self.centroids = np.stack([unit(m.mean(axis=0)) for m in members]).astype(np.float32)
        reach = [
            np.percentile(1.0 - m @ c, FAR_QUANTILE)
            for m, c in zip(members, self.centroids, strict=True)
        ]
        self.reach = np.maximum(np.array(reach, dtype=np.float32), 1e-6)

    def _fit_classifier(self, points: np.ndarray, own: np.ndarray) -> None:
        """p(group | x) over standardised embeddings (rows of small groups left out)."""
        self.mean = points.mean(axis=0)
        self.scale = points.std(axis=0) + 1e-6
        self.coef: np.ndarray = np.zeros((len(self.tables), points.shape[1]), dtype=np.float32)
        self.intercept: np.ndarray = np.zeros(len(self.tables), dtype=np.float32)
        if len(self.tables) < 2:
            return
        from sklearn.linear_model import LogisticRegression

        fit = own >= 0
        model = LogisticRegression(C=float(self.params["c"]), max_iter=2000)
        model.fit((points[fit] - self.mean) / self.scale, own[fit])
        self.coef = model.coef_.astype(np.float32)
        self.intercept = model.intercept_.astype(np.float32)
        if len(self.tables) == 2:  # sklearn's binary form: one row for class 1
            self.coef = np.vstack([-self.coef, self.coef]) / 2
            self.intercept = np.hstack([-self.intercept, self.intercept]) / 2

    def _choose_weight(
        self, queries: np.ndarray, earned: np.ndarray, tables: np.ndarray, labels: np.ndarray
    ) -> tuple[float, dict[str, Any]]:
        """The residual weight by the rule in the module docstring, and what the inner
        cross-validation measured at every weight."""
        folds = int(self.params["folds"])
        fold = _folds(tables, folds, seed=1)
        parts = np.zeros((len(WEIGHTS), *earned.shape), dtype=np.float32)
        for f in range(folds):
            train, test = fold != f, fold == f
            inner = self._unweighted()
            inner.fallback = self.fallback  # the one chosen above
            inner._fit(queries[train], earned[train], labels[train])
            found = inner._parts(queries[test])
            for i, w in enumerate(WEIGHTS):
                parts[i][test] = self.fallback.predict(found, w)
        # per row, for each weight: the credit of the model picked, and the squared error
        picked = np.stack([earned[np.arange(len(earned)), p.argmax(axis=1)] for p in parts])
        error = ((parts - earned) ** 2).mean(axis=2)
        # each row weighs 1/(tables x its table's rows): the unweighted mean over tables
        names, inverse, counts = np.unique(tables, return_inverse=True, return_counts=True)
        weight = 1.0 / (len(names) * counts[inverse])

        def gain(values: np.ndarray, i: int) -> tuple[float, float]:
            """Weight i's mean gain over weight 0 and its standard error."""
            diff = values[i] - values[0]
            return float(weight @ diff), float(np.sqrt(np.sum((weight * diff) ** 2)))

        accuracy = [gain(picked, i) for i in range(len(WEIGHTS))]
        fit = [gain(-error, i) for i in range(len(WEIGHTS))]  # less error is a gain
        best, criterion = 0, "prior"
        significant = [i for i, (g, se) in enumerate(accuracy) if i and g > SIGNIFICANT * se]
        if significant:
            best, criterion = max(significant, key=lambda i: accuracy[i][0]), "accuracy"
        else:
            kept = [i for i, (g, _) in enumerate(accuracy) if i and g >= 0.0]
            closer = [i for i in kept if fit[i][0] > SIGNIFICANT * fit[i][1]]
            if closer:
                best, criterion = max(closer, key=lambda i: fit[i][0]), "squared error"
        report = {
            "criterion": criterion,
            "cv_accuracy_by_weight": {
                f"{w:g}": round(float(weight @ p), 4) for w, p in zip(WEIGHTS, picked, strict=True)
            },
            "cv_squared_error_by_weight": {
                f"{w:g}": round(float(weight @ e), 5) for w, e in zip(WEIGHTS, error, strict=True)
            },
        }
        return WEIGHTS[best], report

    def fit_report(self) -> dict[str, Any]:
        return {**self.chosen, "notes": list(self.notes)}

    # -- predicting ------------------------------------------------------------------
    def _groups_of(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(unit points, logits of p(group | x), distance to the nearest group over its
        reach)."""
        points = unit(queries - self.center).astype(np.float32)
        logits = ((points - self.mean) / self.scale) @ self.coef.T + self.intercept
        nearest = ((1.0 - points @ self.centroids.T) / self.reach).min(axis=1)
        return points, logits, nearest

    def _prior(self, logits: np.ndarray, nearest: np.ndarray) -> np.ndarray:
        return self.fallback.prior(logits, nearest, self.tables, self.global_table)

    def _residual(self, points: np.ndarray) -> np.ndarray:
        """The mean residual of each point's ``k`` nearest training queries."""
        k = min(int(self.params["k"]), len(self.points))
        near = np.argpartition(-(points @ self.points.T), k - 1, axis=1)[:, :k]
        return np.asarray(self.residuals[near].mean(axis=1))

    def _parts(self, queries: np.ndarray) -> fallback.Parts:
        """What ``Fallback.predict`` needs of each query."""
        points, logits, nearest = self._groups_of(queries)
        return logits, nearest, self.tables, self.global_table, self._residual(points)

    def predict(self, queries: np.ndarray) -> np.ndarray:
        points, logits, nearest = self._groups_of(queries)
        weights = self.fallback.residual_weight(nearest, float(self.weight))
        if not weights.any():  # the prior alone: no neighbour search on the routing path
            return np.clip(self._prior(logits, nearest), 0.0, 1.0)
        parts = logits, nearest, self.tables, self.global_table, self._residual(points)
        return self.fallback.predict(parts, float(self.weight))

    def explain(self, queries: np.ndarray) -> list[dict[str, float | int | bool]]:
        """Per query: its most likely group (the training table's number, or the cluster's),
        that group's probability, its distance to the nearest group (in units of that
        group's reach) and whether it fell back to the global table."""
        _, logits, nearest = self._groups_of(queries)
        chance = self.fallback.chance(logits)
        shares = self.fallback.global_share(nearest)
        return [
            {
                "group": int(self.group_ids[c.argmax()]),
                "group_probability": round(float(c.max()), 4),
                "distance": round(float(d), 4),
                "global_share": round(float(g), 4),
                "global_prior": bool(g >= 1.0),
            }
            for c, d, g in zip(chance, nearest, shares, strict=True)
        ]

    # -- artifacts -------------------------------------------------------------------
    _ARRAYS = (
        "center", "points", "residuals", "tables", "global_table", "mean", "scale", "coef",
        "intercept", "centroids", "reach", "weight", "group_ids",
    )  # fmt: skip

    def state(self) -> dict[str, np.ndarray]:
        out = {name: np.asarray(getattr(self, name)) for name in self._ARRAYS}
        out["points"] = out["points"].astype(np.float16)
        out["fallback"] = self.fallback.array()
        return out

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        for name, value in zip(self._ARRAYS, _require(arrays, *self._ARRAYS), strict=True):
            setattr(self, name, value.astype(np.float32) if value.dtype == np.float16 else value)
        if "fallback" in arrays:
            self.fallback = Fallback.from_array(arrays["fallback"])
        else:  # an artifact from before the fallback was chosen: a hard switch at `far`
            self.fallback = Fallback(float(self.params["far"]), 0.0, 1.0)


def _folds(tables: np.ndarray, folds: int, seed: int) -> np.ndarray:
    from router_model.train import stratified_folds

    return stratified_folds(tables, folds, seed)
