"""The ``prior`` head against the ``knn`` head and the task prior, per router
layer, on the RouterDC train tables: cross-validated accuracy and routing latency.

Per layer (one forward pass embeds every layer; cached):
- ``task_prior``: each table sent to its best model, the table known (fitted on the
  training folds): the lookup a learned head fell below on held-out data;
- ``best_single``: the one model best over the tables (training folds);
- ``knn``: the learned head that was the default before ``prior`` (k 50, prior_weight 100);
- ``prior``: the prior head, the group recovered from the embedding, residual weight
  chosen by its own inner cross-validation; ``prior_by_weight``: at every weight it tries
  (the shrinkage curve);
- ``oracle``: every query sent to a model that answers it best (the ceiling);
- ``group_accuracy``: how often the prior head's most likely group is the query's table;
- ``latency_ms``: one query at a time through the router LLM cut at that layer and the
  prior head (p50 over ``--latency-queries`` queries of the tables, after a warm-up).

5-fold cross-validation stratified by table, the unweighted mean over the five tables
(RouterDC's own figure).

RouteLLM (GPT-4 against Mixtral, the two train tables pooled, 2-fold CV as
``router_quality.py``, ``--seeds`` splits): APGR and CPT(50%)/CPT(80%) of the threshold
sweep over the predicted gain of the strong model, per ``--routellm-layers`` layer, for
``knn``, the ``prior`` head (weight by its inner CV) on the two tables and on
``--clusters`` k-means clusters, and the prior alone (weight 0) on those clusters.

Writes JSON and a PNG (accuracy and latency against layer).

    .venv/bin/python benchmarks/router_prior.py --layers 1 2 3 4 6 9 12 18
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_common import head_maker, layer_states, routellm_cv

from orchestrator import profiles
from orchestrator.config import load_config
from orchestrator.settings import get_settings
from router_model.backbone import HiddenStateEmbedder
from router_model.prior import WEIGHTS, PriorHead
from router_model.scores import ScoreTable, read_score_tables
from router_model.train import out_of_fold, stack_tables, stratified_folds

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def accuracy(predicted: np.ndarray, earned: np.ndarray, groups: np.ndarray) -> float:
    picked = earned[np.arange(len(earned)), predicted.argmax(axis=1)]
    return float(np.mean([picked[groups == g].mean() for g in np.unique(groups)]))


def label_priors(earned: np.ndarray, groups: np.ndarray, folds: int) -> tuple[float, float]:
    """(task prior, best single model), each fitted on the training folds."""
    fold = stratified_folds(groups, folds)
    task = np.zeros_like(earned)
    single = np.zeros_like(earned)
    for f in range(folds):
        train, test = fold != f, fold == f
        tables = {g: earned[train & (groups == g)].mean(axis=0) for g in np.unique(groups)}
        task[test] = np.stack([tables[g] for g in groups[test]])
        single[test] = np.mean(list(tables.values()), axis=0)
    return accuracy(task, earned, groups), accuracy(single, earned, groups)


def cv(
    x: np.ndarray, earned: np.ndarray, groups: np.ndarray, folds: int, name: str,
    weight: float | None = None,
) -> np.ndarray:  # fmt: skip
    params: dict[str, float | int] = {} if weight is None else {"residual_weight": weight}
    return out_of_fold(head_maker(name, params), x, earned, groups, folds)


def prior_cv(
    x: np.ndarray, earned: np.ndarray, groups: np.ndarray, folds: int
) -> tuple[np.ndarray, list[float]]:
    """Out-of-fold predictions of the prior head and the residual weight each fold chose."""
    fold = stratified_folds(groups, folds)
    predicted = np.zeros_like(earned)
    chosen = []
    for f in range(folds):
        train, test = fold != f, fold == f
        head = PriorHead()
        head.fit_scores(x[train], earned[train], groups[train])
        predicted[test] = head.predict(x[test])
        chosen.append(float(head.chosen["residual_weight"]))
    return predicted, chosen


def latency(
    model_dir: str, layer: int, max_tokens: int, dtype: str, head: PriorHead, queries: list[str]
) -> float:
    lm = HiddenStateEmbedder(model_dir, layer, max_tokens, dtype=dtype)
    lm.load()
    for q in queries[:5]:
        head.predict(lm.embed([q]))
    took = []
    for q in queries:
        started = time.perf_counter()
        head.predict(lm.embed([q])).argmax()
        took.append(time.perf_counter() - started)
    return 1000 * statistics.median(took)


def routellm_row(
    layer: int, x: np.ndarray, tables: list[ScoreTable], clusters: int, seeds: int
) -> dict[str, Any]:
    """APGR / CPT(50%) / CPT(80%) per head (``router_quality.routellm_cv``)."""
    heads: dict[str, tuple[str, dict[str, float | int]]] = {
        "knn": ("knn", {}),
        "prior": ("prior", {}),
        f"prior_clusters{clusters}": ("prior", {"clusters": clusters}),
        f"prior_clusters{clusters}_w0": ("prior", {"clusters": clusters, "residual_weight": 0.0}),
    }
    row: dict[str, Any] = {"layer": layer}
    for label, (name, params) in heads.items():
        found = routellm_cv(tables, x, seeds, head_maker(name, params))
        row[label] = {k: round(v, 4) for k, v in found.items()}
    return row


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = [r["layer"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    series = {
        "prior head (CV weight)": [r["prior"] for r in rows],
        "prior head, weight 1": [r["prior_by_weight"]["1"] for r in rows],
        "knn": [r["knn"] for r in rows],
        "task prior (table known)": [r["task_prior"] for r in rows],
        "best single model": [r["best_single"] for r in rows],
    }
    for label, values in series.items():
        left.plot(layers, values, marker="o", label=label)
    left.set_xlabel("router LLM layer")
    left.set_ylabel("5-fold CV accuracy (mean over tables)")
    left.legend(fontsize=8)
    right.plot(layers, [r["latency_ms"] for r in rows], marker="o")
    right.axhline(10, color="grey", linestyle="--", linewidth=1)
    right.set_xlabel("router LLM layer")
    right.set_ylabel("one routing decision, p50 ms")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 2, 3, 4, 6, 9, 12, 18])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--latency-queries", type=int, default=60)
    parser.add_argument("--routellm-layers", type=int, nargs="*", default=[1, 2, 4, 6])
    parser.add_argument("--clusters", type=int, default=32, help="k-means groups on RouteLLM")
    parser.add_argument("--seeds", type=int, default=2, help="RouteLLM CV splits")
    parser.add_argument(
        "--dtype",
        choices=["bfloat16", "float32"],
        help="router LLM precision (default: the cpu profile's router.dtype)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/router_prior.json")
    args = parser.parse_args()

    config = load_config(profiles.FOLDER / "cpu.yaml")
    r = config.router
    args.dtype = args.dtype or r.dtype
    model_dir = r.model.location(get_settings().cache_dir)
    tables = read_score_tables(sorted((DATA / "routerdc").glob("*_train.jsonl")))
    queries = [q for t in tables for q in t.queries]
    earned, groups = stack_tables(tables)
    layers = sorted(set(args.layers))
    started = time.monotonic()
    x = layer_states(model_dir, r.max_query_tokens, args.dtype, tables, layers, "prior")
    task_prior, best_single = label_priors(earned, groups, args.folds)
    oracle = accuracy(earned, earned, groups)
    rng = np.random.default_rng(0)
    sample = [queries[i] for i in rng.choice(len(queries), args.latency_queries, replace=False)]
    rows = []
    for layer in layers:
        xs = x[layer]

        prior, chosen = prior_cv(xs, earned, groups, args.folds)
        full = PriorHead()
        full.fit_scores(xs, earned, groups)
        row = {
            "layer": layer,
            "task_prior": round(task_prior, 4),
            "best_single": round(best_single, 4),
            "knn": round(accuracy(cv(xs, earned, groups, args.folds, "knn"), earned, groups), 4),
            "prior": round(accuracy(prior, earned, groups), 4),
            "prior_weights_chosen_per_fold": chosen,
            "prior_by_weight": {
                f"{w:g}": round(
                    accuracy(cv(xs, earned, groups, args.folds, "prior", w), earned, groups), 4
                )
                for w in WEIGHTS
            },
            "oracle": round(oracle, 4),
            "group_accuracy": round(
                float(
                    np.mean(
                        [e["group"] == g for e, g in zip(full.explain(xs), groups, strict=True)]
                    )
                ),
                4,
            ),
            "full_fit_weight": full.chosen["residual_weight"],
            "latency_ms": round(
                latency(model_dir, layer, r.max_query_tokens, args.dtype, full, sample), 2
            ),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    routellm_tables = read_score_tables(sorted((DATA / "routellm").glob("*_train.jsonl")))
    routellm = []
    if args.routellm_layers:
        xr = layer_states(
            model_dir, r.max_query_tokens, args.dtype, routellm_tables,
            sorted(set(args.routellm_layers)), "routellm",
        )  # fmt: skip
        for layer, xs in xr.items():
            routellm.append(routellm_row(layer, xs, routellm_tables, args.clusters, args.seeds))
            print(json.dumps(routellm[-1]), flush=True)
    result = {
        "benchmark": "router_prior",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "questions": len(queries),
        "tables": [t.name for t in tables],
        "folds": args.folds,
        "dtype": args.dtype,
        "rows": rows,
        "routellm": routellm,
        "seconds": round(time.monotonic() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    plot(rows, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
