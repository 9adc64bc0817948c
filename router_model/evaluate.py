"""Router quality from score tables: accuracy against the baselines, and cost sweeps.

Accuracy is the mean credit of the models the router picked (``ScoreTable.earned``).
Baselines per table: each single model, the best of them, a uniformly random pick (the
mean over models) and the oracle (best credit per query).

The cost sweep follows RouteLLM: each query is scored by the predicted quality gain of
the most expensive ("strong") model over the best of the others; sending the top share
``s`` of queries to the strong model traces quality against ``s``. Ties in the score are
broken at random in expectation, i.e. the curve is linear between distinct thresholds.
PGR(s) = (quality(s) − weak) / (strong − weak), where weak is the quality with no call to
the strong model; APGR is the area under PGR over s ∈ [0, 1]; CPT(x) is the least share
of strong calls with PGR ≥ x.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from router_model.scores import ScoreTable


def table_report(table: ScoreTable, choice: np.ndarray) -> dict[str, object]:
    earned = table.earned()
    per_model = earned.mean(axis=0)
    got = earned[np.arange(len(table)), choice]
    share = np.bincount(choice, minlength=len(table.models)) / len(table)
    return {
        "n": len(table),
        "router": float(got.mean()),
        "best_single": float(per_model.max()),
        "oracle": float(earned.max(axis=1).mean()),
        "random": float(per_model.mean()),
        "models": {m: float(a) for m, a in zip(table.models, per_model, strict=True)},
        "share": {m: float(s) for m, s in zip(table.models, share, strict=True)},
    }


def average_report(reports: Sequence[dict[str, object]]) -> dict[str, object]:
    keys = ("router", "best_single", "oracle", "random")
    out: dict[str, object] = {k: float(np.mean([float(r[k]) for r in reports])) for k in keys}  # type: ignore[arg-type]
    models = list(reports[0]["models"])  # type: ignore[call-overload]
    means = {m: float(np.mean([r["models"][m] for r in reports])) for m in models}  # type: ignore[index]
    best = max(means, key=lambda m: means[m])
    out["best_single_model"] = {"model": best, "accuracy": means[best]}
    return out


def _curve(
    gain: np.ndarray, strong: np.ndarray, weak: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact (share, quality, strong-call count) points at every distinct gain threshold."""
    order = np.argsort(-gain, kind="stable")
    g, delta = gain[order], (strong - weak)[order]
    n = len(g)
    ends = np.flatnonzero(np.r_[g[1:] != g[:-1], True]) + 1  # block ends
    cum = np.r_[0.0, np.cumsum(delta)]
    counts = np.r_[0, ends]
    quality = (weak.sum() + cum[counts]) / n
    return counts / n, quality, counts


def cost_sweep(
    earned: np.ndarray,
    predicted: np.ndarray,
    costs: np.ndarray,
    points: int = 21,
) -> dict[str, object]:
    """RouteLLM's threshold sweep; ``costs[i, j]`` is model ``j``'s cost on query ``i``."""
    n, m = earned.shape
    strong = int(np.argmax(costs.mean(axis=0)))
    others = [j for j in range(m) if j != strong]
    rows = np.arange(n)
    if others:
        rest = np.asarray(others)[np.argmax(predicted[:, others], axis=1)]
        gain = predicted[:, strong] - predicted[rows, rest]
    else:
        rest = np.full(n, strong)
        gain = np.zeros(n)
    q_strong, q_weak = earned[:, strong], earned[rows, rest]
    shares, quality, _ = _curve(gain, q_strong, q_weak)
    gap = q_strong.mean() - q_weak.mean()
    pgr = (quality - q_weak.mean()) / gap if gap > 0 else np.ones_like(quality)
    apgr = float(np.trapezoid(pgr, shares))
    grid = np.linspace(0.0, 1.0, points)
    grid_quality = np.interp(grid, shares, quality)
    cost_strong, cost_weak = costs[:, strong].mean(), costs[rows, rest].mean()
    return {
        "strong_model_index": strong,
        "apgr": apgr,
        "cpt50": _cpt(shares, pgr, 0.5),
        "cpt80": _cpt(shares, pgr, 0.8),
        "curve": [
            {
                "strong_share": float(s),
                "accuracy": float(q),
                "cost_per_query": float(cost_weak + s * (cost_strong - cost_weak)),
            }
            for s, q in zip(grid, grid_quality, strict=True)
        ],
    }


def _cpt(shares: np.ndarray, pgr: np.ndarray, target: float) -> float:
    """Least share of strong calls at which the (piecewise linear) PGR reaches ``target``."""
    above = np.flatnonzero(pgr >= target - 1e-12)
    if len(above) == 0:
        return 1.0
    i = int(above[0])
    if i == 0:
        return float(shares[0])
    s0, s1, p0, p1 = shares[i - 1], shares[i], pgr[i - 1], pgr[i]
    return float(s0 + (target - p0) * (s1 - s0) / (p1 - p0))
