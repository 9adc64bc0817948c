"""Per-query early exit: a probe on an early layer answers the queries it is sure of; the
rest run on through the remaining layers to the full-depth head.

The probe predicts, per specialist, how much a query belongs to that specialist's kind
(scores in [0, 1]). It is sure of a query when its best specialist leads the second by at
least ``min_margin``, or, with a second opinion (``agree``: the few-shot head fitted on the
specialists' examples at the same layer), when both pick the same specialist. Only the
other queries pay for the deep layers, continuing from the hidden states the probe already
computed (nothing is run twice). ``min_margin`` and whether to take the second opinion are
read off the curves of routing accuracy against exit rate
(``benchmarks/router_early_exit.py``): a margin of 0 exits every query at the probe, above 1
none but those the two heads agree on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from router_model.backbone import Stage
from router_model.heads import RoutingHead

Deep = Callable[[np.ndarray], np.ndarray]  # full-depth pooled rows -> quality per specialist


def margins(quality: np.ndarray) -> np.ndarray:
    """Best score minus the second best, per row (infinite with a single specialist)."""
    if quality.shape[1] < 2:
        return np.full(len(quality), np.inf)
    top = np.sort(quality, axis=1)
    return top[:, -1] - top[:, -2]


def exits(quality: np.ndarray, min_margin: float, second: np.ndarray | None = None) -> np.ndarray:
    """Which rows of probe scores (in [0, 1], as every head's) are sure enough to exit:
    a lead of ``min_margin``, or the same best specialist as ``second``'s scores."""
    sure = margins(quality) >= min_margin
    if second is not None:
        sure |= quality.argmax(axis=1) == second.argmax(axis=1)
    return sure


@dataclass(frozen=True)
class EarlyExit:
    """``stage(queries)`` runs the first ``layer`` layers; ``probe`` scores their pooled
    states, its column ``columns[i]`` standing for specialist ``i``; ``agree``, when given,
    scores the same states one column per specialist in order."""

    stage: Callable[[list[str]], Stage]
    probe: RoutingHead
    columns: Sequence[int]
    layer: int
    min_margin: float
    head_name: str = "linear"
    agree: RoutingHead | None = None

    def predict(self, queries: list[str], deep: Deep) -> tuple[np.ndarray, np.ndarray]:
        """Quality per query and specialist, and which queries exited at the probe."""
        stage = self.stage(queries)
        quality = self.probe.predict(stage.pooled)[:, list(self.columns)]
        second = None if self.agree is None else self.agree.predict(stage.pooled)
        exited = exits(quality, self.min_margin, second)
        rest = np.flatnonzero(~exited)
        if len(rest):
            quality[rest] = deep(stage.rest(rest.tolist()))
        return quality, exited
