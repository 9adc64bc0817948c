"""What the ``prior`` head gives a query of a task it never saw, and how that is chosen.

The head knows groups (its training tables, or clusters of them). A query gets
- the groups' tables mixed by p(group | x) at ``temperature`` (softmax of the group
  classifier's logits over it: above 1 a query the classifier is unsure of leans toward
  the mean of the tables), while it lies within ``far`` x (1 - ``blend``) of its nearest
  group;
- the global table (the unweighted mean of the group tables, whose best model is the
  best single model) beyond ``far``;
- the two mixed in proportion between;
- and, in that same proportion, the head's per-query residual at ``far_weight`` rather
  than at the residual weight the head chose for the tasks it knows. Away from every
  group the task-level prior says little (the global table ranks nearly every model
  alike), and the residual (how the query's nearest training queries did against their
  own tasks' tables) is the only per-query signal left: left out in turn, HumanEval
  and CMMLU gained most from it (``benchmarks/router_loto.py``).

Distances are cosine distances to a group's centroid in units of that group's reach (the
99th percentile of its own rows' distances).

The defaults (``DEFAULT``) were chosen so on the RouterDC train tables at layer 1 of the
router LLM (``benchmarks/router_loto.py``). A value set to -1 is chosen on the training
tables themselves, over ``GRID``. Two accuracies are measured on the same fits:
- **leaving each table out in turn**: a head fitted on the others, judged on a task it
  never saw;
- **stratified folds**: the tasks it saw.

The value with the best mean of the two is taken, each accuracy the unweighted mean over
tables. With fewer than three tables there is nothing to leave out, and ``DEFAULT`` stands.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from router_model.heads import softmax

GRID = {
    "far": (3.0, 1.5, 1.0, 0.75, 0.5, 0.3, 0.2, 0.15, 0.1),  # the least fallback first
    "blend": (0.0, 0.5),
    "temperature": (1.0, 2.0, 4.0),
    "far_weight": (0.0, 0.3, 0.5, 1.0),
}
NAMES = ("far", "blend", "temperature", "far_weight")
AUTO = -1.0
# (logits of p(group | x), distance over reach, group tables, global table, residual) of
# the rows ``test`` from a head fitted on the rows ``train``
Parts = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
FitParts = Callable[[np.ndarray, np.ndarray], Parts]


@dataclass(frozen=True)
class Fallback:
    far: float
    blend: float
    temperature: float
    far_weight: float = 0.0  # 0: what an artifact from before it was saved meant

    @staticmethod
    def check(far: float, blend: float, temperature: float, far_weight: float) -> None:
        """Each value in range, or -1 to have it chosen (one readable error otherwise)."""
        if far != AUTO and not far > 0:
            raise ValueError(f"prior: far {far:g} must be above 0, or be -1 to have it chosen")
        if blend != AUTO and not 0.0 <= blend < 1.0:
            raise ValueError(f"prior: blend {blend:g} must lie in [0, 1), or be -1")
        if temperature != AUTO and not temperature >= 1.0:
            raise ValueError(f"prior: temperature {temperature:g} must be at least 1, or be -1")
        if far_weight != AUTO and not 0.0 <= far_weight <= 1.0:
            raise ValueError(f"prior: far_weight {far_weight:g} must lie in [0, 1], or be -1")

    def array(self) -> np.ndarray:
        return np.array([getattr(self, n) for n in NAMES], dtype=np.float64)

    @classmethod
    def from_array(cls, values: np.ndarray) -> Fallback:
        return cls(*(float(v) for v in values))  # three values: saved before far_weight

    def global_share(self, distance: np.ndarray) -> np.ndarray:
        """How much of each query's prior is the global table, in [0, 1]."""
        if self.blend <= 0.0:
            return (distance > self.far).astype(np.float32)
        near = self.far * (1.0 - self.blend)
        return np.clip((distance - near) / (self.far - near), 0.0, 1.0).astype(np.float32)

    def chance(self, logits: np.ndarray) -> np.ndarray:
        return softmax(logits / self.temperature)

    def prior(
        self, logits: np.ndarray, distance: np.ndarray, tables: np.ndarray, world: np.ndarray
    ) -> np.ndarray:
        share = self.global_share(distance)[:, None]
        return ((1.0 - share) * (self.chance(logits) @ tables) + share * world).astype(np.float32)

    def residual_weight(self, distance: np.ndarray, near: float) -> np.ndarray:
        """Each query's residual weight: ``near`` (the head's) within reach of a group,
        ``far_weight`` where it falls back, mixed as the prior is (a column)."""
        share = self.global_share(distance)
        return ((1.0 - share) * near + share * self.far_weight)[:, None].astype(np.float32)

    def predict(self, parts: Parts, near: float) -> np.ndarray:
        """The predicted credit of each query and model, from a head's ``parts``."""
        logits, distance, tables, world, residual = parts
        prior = self.prior(logits, distance, tables, world)
        return np.clip(prior + self.residual_weight(distance, near) * residual, 0.0, 1.0)


DEFAULT = Fallback(far=0.2, blend=0.0, temperature=2.0, far_weight=0.3)


def choose(
    fit_parts: FitParts,
    earned: np.ndarray,
    tables: np.ndarray,
    fixed: Mapping[str, float],
    folds: np.ndarray,
    grid: Mapping[str, Sequence[float]] = GRID,
) -> tuple[Fallback, dict[str, Any]]:
    """The fallback whose values at -1 in ``fixed`` are chosen as the module says, over
    ``grid``; ``folds`` gives each row's stratified fold."""
    names = np.unique(tables)
    given = {k: v for k, v in fixed.items() if v != AUTO}
    if len(given) == len(NAMES):
        chosen = Fallback(**given)
        return chosen, {**_values(chosen), "fallback_criterion": "given"}
    if len(names) < 3:
        chosen = replace(DEFAULT, **given)
        note = f"{len(names)} table(s): too few to leave one out"
        return chosen, {**_values(chosen), "fallback_criterion": note}
    axes = [(given[k],) if k in given else grid[k] for k in NAMES]
    tried = [Fallback(*v) for v in itertools.product(*axes)]
    left_out = _picked(fit_parts, earned, tried, [(tables != t, tables == t) for t in names])
    stratified = _picked(
        fit_parts, earned, tried, [(folds != f, folds == f) for f in np.unique(folds)]
    )

    def mean(picked: np.ndarray) -> float:
        return float(np.mean([picked[tables == t].mean() for t in names]))

    scores = [(mean(left_out[i]), mean(stratified[i])) for i in range(len(tried))]
    # ties go to the first: the least fallback (the largest far), the sharpest choice
    best = max(range(len(tried)), key=lambda i: (round(sum(scores[i]), 9), -i))
    report = {
        **_values(tried[best]),
        "fallback_criterion": "mean of leave-one-table-out and stratified accuracy",
        "fallback_left_out": round(scores[best][0], 4),
        "fallback_stratified": round(scores[best][1], 4),
        "fallback_grid": [
            {**_values(f), "left_out": round(lo, 4), "stratified": round(st, 4)}
            for f, (lo, st) in zip(tried, scores, strict=True)
        ],
    }
    return tried[best], report


def _picked(
    fit_parts: FitParts,
    earned: np.ndarray,
    grid: list[Fallback],
    splits: list[tuple[np.ndarray, np.ndarray]],
) -> np.ndarray:
    """Per fallback of ``grid``, per row: the credit of the model it picks (the residual
    at weight 0 near a group: the head chooses that weight after), each row predicted by a
    head fitted on its split's training rows."""
    picked = np.zeros((len(grid), len(earned)), dtype=np.float32)
    for train, test in splits:
        parts = fit_parts(train, test)
        rows = np.flatnonzero(test)
        for i, fallback in enumerate(grid):
            choice = fallback.predict(parts, 0.0).argmax(axis=1)
            picked[i, rows] = earned[rows, choice]
    return picked


def _values(fallback: Fallback) -> dict[str, float]:
    return {n: getattr(fallback, n) for n in NAMES}
