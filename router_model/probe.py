"""The early exit's probe: a ridge probe on an early layer of the router LLM, taught which
specialist each query belongs to.

It learns from two sources: labelled queries (each file of a task given to a specialist,
e.g. GSM8K → math) and the config's own few-shot material (every specialist's
description and examples), the latter repeated ``shot_weight`` times so that a few dozen
everyday examples are not drowned by thousands of benchmark questions. Targets are one-hot
per specialist, so its scores read as predicted task membership in [0, 1], and the margin
between the best two says how sure it is (``router_model.early_exit``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from router_model.heads import LinearHead
from router_model.train import stratified_folds

DEFAULT_L2 = 1000.0
DEFAULT_SHOT_WEIGHT = 20


def fit_probe(
    x: np.ndarray,
    labels: np.ndarray,
    shots: np.ndarray,
    shot_labels: np.ndarray,
    specialists: int,
    *,
    shot_weight: int = DEFAULT_SHOT_WEIGHT,
    l2: float = DEFAULT_L2,
) -> LinearHead:
    """Fit on labelled rows ``x`` and the few-shot rows ``shots`` (weighted)."""
    if len(x) + len(shots) == 0:
        raise ValueError("the probe needs at least one labelled query")
    if shot_weight < 0:
        raise ValueError("shot_weight must be at least 0")
    rows = np.concatenate([x, *[shots] * shot_weight]) if shot_weight else x
    targets = np.eye(specialists)[np.concatenate([labels, *[shot_labels] * shot_weight])]
    head = LinearHead(l2=l2)
    head.fit_scores(rows, targets, np.zeros(len(rows), dtype=np.int64))
    return head


def out_of_fold_probe(
    x: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    shots: np.ndarray,
    shot_labels: np.ndarray,
    specialists: int,
    *,
    folds: int = 5,
    seed: int = 0,
    shot_weight: int = DEFAULT_SHOT_WEIGHT,
    l2: float = DEFAULT_L2,
) -> np.ndarray:
    """Each labelled row's probe scores from a probe fitted on the other folds (folds
    stratified by ``groups``, the file each row came from) and every shot."""
    fold = stratified_folds(groups, folds, seed)
    scores = np.zeros((len(x), specialists))
    for k in range(folds):
        train = fold != k
        probe = fit_probe(
            x[train], labels[train], shots, shot_labels, specialists,
            shot_weight=shot_weight, l2=l2,
        )  # fmt: skip
        scores[~train] = probe.predict(x[~train])
    return scores


def group_accuracy(choice: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> float:
    """Share routed to the labelled specialist, the unweighted mean over the files."""
    hits = choice == labels
    return float(np.mean([hits[groups == g].mean() for g in np.unique(groups)]))


def shot_rows(per_specialist: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack each specialist's few-shot rows, with their specialist index."""
    labels = np.concatenate([np.full(len(r), i) for i, r in enumerate(per_specialist)])
    return np.concatenate(list(per_specialist)), labels.astype(np.int64)
