"""Fit a learned routing head on score tables, with its cross-validated figures.

Two yardsticks, each stored in the artifact's training metadata:
- **stratified** k-fold cross-validation: folds stratified by table, so each fold holds
  the same share of every task (in distribution); the accuracy is the unweighted mean
  over tables, as the headline figures are, beside the per-table baselines;
- **leave one table out**: for each table, a head fitted on every other table and judged
  on this one, a task it never saw (out of distribution), beside the best single model of
  the tables it was fitted on (what a router that knows nothing of the new task should
  at least match) and the left-out table's own best model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

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


def learned_head(name: str, params: dict[str, float | int]) -> LearnedHead:
    head = build_head(name, **params)
    if not isinstance(head, LearnedHead):
        raise ValueError(f"head {name!r} is built from examples, not trained on score tables")
    return head


def fit_head(
    name: str, params: dict[str, float | int], x: np.ndarray, earned: np.ndarray, groups: np.ndarray
) -> LearnedHead:
    head = learned_head(name, params)
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
    predicted = out_of_fold(lambda: learned_head(name, params), x, earned, groups, folds, seed)
    reports = [table_report(t, predicted[groups == i].argmax(axis=1)) for i, t in enumerate(tables)]
    return {
        "folds": folds,
        "seed": seed,
        "files": {t.name: r for t, r in zip(tables, reports, strict=True)},
        "average": average_report(reports),
    }


def leave_one_table_out(
    name: str,
    params: dict[str, float | int],
    tables: Sequence[ScoreTable],
    x: np.ndarray,
) -> dict[str, object]:
    """For each table, a head fitted on all the others and judged on it: its accuracy,
    the best single model of the training tables on it, and the table's own best model
    (the most a router sending the whole table to one model could earn)."""
    if len(tables) < 2:
        raise ValueError(
            f"leave-one-table-out needs at least two score tables, given {len(tables)}"
        )
    earned, groups = stack_tables(tables)
    means = np.stack([t.earned().mean(axis=0) for t in tables])  # per table, per model
    files: dict[str, dict[str, Any]] = {}
    for i, table in enumerate(tables):
        train, test = groups != i, groups == i
        head = learned_head(name, params)
        head.fit_scores(x[train], earned[train], groups[train])
        report = table_report(table, head.predict(x[test]).argmax(axis=1))
        # the best single model of the other tables: the best unweighted mean over them
        single = int(np.argmax(np.delete(means, i, axis=0).mean(axis=0)))
        per_model = means[i]
        own = int(np.argmax(per_model))
        files[table.name] = {
            "n": len(table),
            "router": report["router"],
            "best_single": float(per_model[single]),
            "best_single_model": table.models[single],
            "table_best": float(per_model[own]),
            "table_best_model": table.models[own],
            "oracle": report["oracle"],
            "share": report["share"],
            **_fallback_share(head, x[test]),
        }
    keys = ("router", "best_single", "table_best", "oracle")
    average: dict[str, Any] = {k: float(np.mean([f[k] for f in files.values()])) for k in keys}
    average["tables_below_best_single"] = [
        n for n, f in files.items() if f["router"] < f["best_single"] - 1e-9
    ]
    return {"files": files, "average": average}


def _fallback_share(head: LearnedHead, x: np.ndarray) -> dict[str, float]:
    """The share of queries the head judged far from every group it knows (the prior
    head's ``explain``), when it says."""
    explain = getattr(head, "explain", None)
    if explain is None:
        return {}
    rows = explain(x)
    return {"fallback_share": float(np.mean([r["global_share"] for r in rows]))}


def training_metadata(
    tables: Sequence[ScoreTable],
    cv: dict[str, object] | None,
    seconds: float,
    loto: dict[str, object] | None = None,
) -> dict[str, object]:
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": [{"name": t.name, "n": len(t)} for t in tables],
        "cross_validation": cv,
        "leave_one_table_out": loto,
        "seconds": round(seconds, 1),
    }


def train_head(
    name: str,
    params: dict[str, float | int],
    tables: Sequence[ScoreTable],
    x: np.ndarray,
    folds: int = 5,
    loto: bool = False,
) -> tuple[LearnedHead, dict[str, object]]:
    """Cross-validate (stratified when ``folds`` > 1; leaving each table out in turn with
    ``loto``), then fit on every row."""
    started = time.monotonic()
    cv = cross_validate(name, params, tables, x, folds) if folds > 1 else None
    left_out = leave_one_table_out(name, params, tables, x) if loto else None
    earned, groups = stack_tables(tables)
    head = fit_head(name, params, x, earned, groups)
    meta = training_metadata(tables, cv, time.monotonic() - started, left_out)
    meta["head_fit"] = head.fit_report()
    return head, meta
