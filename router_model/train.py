"""Fit a learned routing head on score tables, with k-fold cross-validation figures.

Folds are stratified by table, so each fold holds the same share of every task; the
cross-validated accuracy (unweighted mean over tables, as the headline figures are) is
stored in the artifact's training metadata beside the per-table baselines.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import numpy as np

from router_model.evaluate import average_report, table_report
from router_model.heads import LearnedHead, build_head
from router_model.scores import ScoreTable


def stratified_folds(groups: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(groups), dtype=np.int64)
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        rng.shuffle(idx)
        fold[idx] = np.arange(len(idx)) % k
    return fold


def stack_tables(tables: Sequence[ScoreTable]) -> tuple[np.ndarray, np.ndarray]:
    earned = np.concatenate([t.earned() for t in tables])
    groups = np.concatenate([np.full(len(t), i) for i, t in enumerate(tables)])
    return earned, groups


def _learned(name: str, params: dict[str, float | int]) -> LearnedHead:
    head = build_head(name, **params)
    if not isinstance(head, LearnedHead):
        raise ValueError(f"head {name!r} is built from examples, not trained on score tables")
    return head


def fit_head(
    name: str, params: dict[str, float | int], x: np.ndarray, earned: np.ndarray, groups: np.ndarray
) -> LearnedHead:
    head = _learned(name, params)
    head.fit_scores(x, earned, groups)
    return head


def out_of_fold(
    make: Callable[[], LearnedHead],
    x: np.ndarray,
    earned: np.ndarray,
    groups: np.ndarray,
    folds: int,
    seed: int = 0,
) -> np.ndarray:
    """Each row's prediction from a head fitted on the other folds."""
    fold = stratified_folds(groups, folds, seed)
    predicted = np.zeros_like(earned)
    for k in range(folds):
        train, test = fold != k, fold == k
        head = make()
        head.fit_scores(x[train], earned[train], groups[train])
        predicted[test] = head.predict(x[test])
    return predicted


def cross_validate(
    name: str,
    params: dict[str, float | int],
    tables: Sequence[ScoreTable],
    x: np.ndarray,
    folds: int = 5,
    seed: int = 0,
) -> dict[str, object]:
    """Out-of-fold predictions for every query, scored per table and averaged."""
    earned, groups = stack_tables(tables)
    predicted = out_of_fold(lambda: _learned(name, params), x, earned, groups, folds, seed)
    reports = [table_report(t, predicted[groups == i].argmax(axis=1)) for i, t in enumerate(tables)]
    return {
        "folds": folds,
        "seed": seed,
        "files": {t.name: r for t, r in zip(tables, reports, strict=True)},
        "average": average_report(reports),
    }


def training_metadata(
    tables: Sequence[ScoreTable], cv: dict[str, object] | None, seconds: float
) -> dict[str, object]:
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": [{"name": t.name, "n": len(t)} for t in tables],
        "cross_validation": cv,
        "seconds": round(seconds, 1),
    }


def train_head(
    name: str,
    params: dict[str, float | int],
    tables: Sequence[ScoreTable],
    x: np.ndarray,
    folds: int = 5,
) -> tuple[LearnedHead, dict[str, object]]:
    """Cross-validate (when ``folds`` > 1), then fit on every row."""
    started = time.monotonic()
    cv = cross_validate(name, params, tables, x, folds) if folds > 1 else None
    earned, groups = stack_tables(tables)
    head = fit_head(name, params, x, earned, groups)
    meta = training_metadata(tables, cv, time.monotonic() - started)
    meta["head_fit"] = head.fit_report()
    return head, meta
