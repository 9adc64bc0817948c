"""The prior head on tasks it never saw: leave one table out, beside the stratified CV.

On the RouterDC train tables (five tasks), at ``--layer`` of the router LLM:
- **the fallback curve**: the distance beyond which a query takes the global table
  (``far``, in units of the nearest group's reach; blend 0) against two accuracies, each
  the unweighted mean over the tables, for each ``temperature`` and ``far_weight`` (the
  residual's weight where a query falls back): leaving each table out in turn (a head
  fitted on the other four, judged on the fifth) and 5-fold stratified CV; beside them
  the best single model of the training tables on the left-out one (what a router that
  knows nothing of a new task should at least match). Heads at residual weight 0 within
  reach of a group; one fit per split serves the whole curve;
- **the head as `router train` makes it** (its defaults, residual weight by its inner CV),
  per left-out table: the router, the best single model of the other tables, the table's
  own best model; and the same head with every fallback value chosen by its own inner
  leave-one-table-out on the four training tables (each of ``fallback.NAMES`` -1),
  which says how well the choice itself generalises;
- **features** (the levers): the layer alone, two layers (``--layer`` and the next)
  concatenated, the layer with the retriever's sentence embedding (all-MiniLM-L6-v2, int8,
  which the service computes for every query anyway) concatenated, that embedding alone,
  and the layer with query-level difficulty signals (length, digits, code punctuation,
  line breaks, capitals) concatenated; each at the head's defaults, and at the best point
  of its own curve;
- **RouteLLM** (GPT-4 against Mixtral, the two train tables pooled, 2-fold CV over
  ``--seeds`` splits): APGR and CPT(50%) of the prior head on ``--clusters`` k-means
  groups at its defaults (on clusters, a fallback that fires only far beyond them) and
  with the fallback chosen on tasks; and of the ridge probe (``linear``) with its
  shrinkage chosen (its default) and set to each of ``LINEAR_L2``.

Writes JSON and a PNG (the curve).

    .venv/bin/python benchmarks/router_loto.py --layer 1
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_common import SHARED_DATA, head_maker, layer_states, routellm_cv

from mixserve_bench.cli.load import machine
from orchestrator import profiles
from orchestrator.config import load_config
from orchestrator.settings import get_settings
from retrieval.embed import Embedder
from router_model import fallback
from router_model.embed_cache import cached_embeddings
from router_model.heads import unit
from router_model.prior import PriorHead
from router_model.scores import ScoreTable, read_score_tables
from router_model.train import cross_validate, leave_one_table_out, stack_tables, stratified_folds

ROOT = Path(__file__).resolve().parents[1]
FAR_CURVE = (3.0, 2.0, 1.5, 1.0, 0.75, 0.5, 0.4, 0.3, 0.25, 0.2, 0.15, 0.1, 0.05)
NEVER = {"far": 3.0, "blend": 0.0, "temperature": 1.0, "far_weight": 0.0}  # the head before
FAR_WEIGHTS = (0.0, 0.3, 1.0)
LINEAR_L2 = (1e3, 3e4)  # the ridge probe's shrinkage set, beside its default (chosen)


def router_states(tables: list[ScoreTable], layers: list[int], tag: str) -> dict[int, np.ndarray]:
    """The router LLM's states as the cpu profile reads queries, in float32."""
    r = load_config(profiles.FOLDER / "cpu.yaml").router
    model_dir = r.model.location(get_settings().cache_dir)
    return layer_states(model_dir, r.max_query_tokens, "float32", tables, layers, tag)


def sentence_states(tables: list[ScoreTable]) -> np.ndarray:
    """The retriever's query embedding (MiniLM, as the cpu profile runs it), cached."""
    cfg = load_config(profiles.FOLDER / "cpu.yaml")
    cache = Path(get_settings().cache_dir)
    e = cfg.retrieval.embedding
    model = Embedder(e.package, e.precision, e.max_tokens, cache, threads=1)
    model.load()
    key = f"sentence:{model.model_version}:{e.precision}:{e.max_tokens}"
    queries = [q for t in tables for q in t.queries]
    return cached_embeddings(model.embed, key, queries, cache / "router-embeddings")


def difficulty(tables: list[ScoreTable]) -> np.ndarray:
    """Query-level signals, standardised: log length, and the share of digits, of code
    punctuation, of line breaks and of capitals."""
    rows = []
    for q in (q for t in tables for q in t.queries):
        n = max(len(q), 1)
        rows.append([
            np.log1p(len(q)),
            sum(c.isdigit() for c in q) / n,
            sum(c in "{}[]();=<>_#" for c in q) / n,
            q.count("\n") / n,
            sum(c.isupper() for c in q) / n,
        ])  # fmt: skip
    z = np.asarray(rows, dtype=np.float32)
    return (z - z.mean(axis=0)) / (z.std(axis=0) + 1e-6)


def joined(*parts: np.ndarray) -> np.ndarray:
    """Each part centred and scaled to unit length, then side by side (equal say each)."""
    return np.concatenate([unit(p - p.mean(axis=0)) for p in parts], axis=1) / np.sqrt(len(parts))


def curve(x: np.ndarray, earned: np.ndarray, groups: np.ndarray) -> list[dict[str, Any]]:
    head = PriorHead()
    _, report = fallback.choose(
        lambda train, test: head._fit_parts(x, earned, groups, train, test),
        earned,
        groups,
        {"far": -1.0, "blend": 0.0, "temperature": -1.0, "far_weight": -1.0},
        stratified_folds(groups, 5, seed=2),
        grid={
            "far": FAR_CURVE,
            "blend": (0.0,),
            "temperature": (1.0, 2.0, 4.0),
            "far_weight": FAR_WEIGHTS,
        },
    )
    return list(report["fallback_grid"])


def best_point(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The point of a curve with the best mean of its two accuracies (residual weight 0)."""
    return max(rows, key=lambda r: r["left_out"] + r["stratified"])


def yardstick(
    tables: list[ScoreTable], x: np.ndarray, params: dict[str, float | int]
) -> dict[str, Any]:
    """The head of ``params`` by both yardsticks, and the fallback its fits chose."""
    started = time.monotonic()
    left_out = leave_one_table_out("prior", params, tables, x)
    stratified = cross_validate("prior", params, tables, x, folds=5)
    head = PriorHead(**params)
    earned, groups = stack_tables(tables)
    head.fit_scores(x, earned, groups)
    fit = head.fit_report()
    return {
        "params": params,
        "stratified": round(float(stratified["average"]["router"]), 4),  # type: ignore[index]
        "left_out": {
            k: v if isinstance(v, list) else round(float(v), 4)
            for k, v in left_out["average"].items()  # type: ignore[union-attr]
        },
        "left_out_files": left_out["files"],
        "fallback": {k: fit.get(k) for k in (*fallback.NAMES, "residual_weight")},
        "seconds": round(time.monotonic() - started, 1),
    }


def routellm(x: np.ndarray, tables: list[ScoreTable], clusters: int, seeds: int) -> dict[str, Any]:
    task_fallback = {n: getattr(fallback.DEFAULT, n) for n in fallback.NAMES}
    heads: dict[str, tuple[str, dict[str, float | int]]] = {
        "prior: defaults": ("prior", {"clusters": clusters}),
        "prior: the fallback chosen on tasks": ("prior", {"clusters": clusters, **task_fallback}),
        "linear: defaults": ("linear", {}),
        **{f"linear: l2 {l2:g}": ("linear", {"l2": l2}) for l2 in LINEAR_L2},
    }
    out = {}
    for label, (name, params) in heads.items():
        found = routellm_cv(tables, x, seeds, head_maker(name, params))
        out[label] = {k: round(v, 4) for k, v in found.items()}
        print("routellm", label, json.dumps(out[label]), flush=True)
    return out


def plot(rows: list[dict[str, Any]], single: float, chosen: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for weight in sorted({r["far_weight"] for r in rows}):
        at = (weight, chosen["temperature"])
        mine = sorted(
            (r for r in rows if (r["far_weight"], r["temperature"]) == at), key=lambda r: r["far"]
        )
        fars = [r["far"] for r in mine]
        label = f"residual weight {weight:g} beyond far"
        left.plot(fars, [r["left_out"] for r in mine], marker="o", label=label)
        right.plot(fars, [r["stratified"] for r in mine], marker="o", label=label)
    left.axhline(single, color="grey", linestyle="--", label="best single model of the others")
    for axis, key in ((left, "left_out"), (right, "stratified")):
        axis.plot([chosen["far"]], [chosen[key]], marker="*", markersize=14, color="black",
                  linestyle="none", label="the head's default")  # fmt: skip
        axis.set_xscale("log")
        axis.set_xlabel("far: distance to the nearest group, in its reach (log)")
        axis.legend(fontsize=7)
    left.set_ylabel("accuracy on the left-out table (mean of 5)")
    right.set_ylabel("5-fold stratified CV accuracy (mean of 5)")
    left.set_title(f"tasks it never saw (temperature {chosen['temperature']:g})")
    right.set_title(f"tasks it saw (temperature {chosen['temperature']:g})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layer", type=int, default=1)
    parser.add_argument("--clusters", type=int, default=32, help="k-means groups on RouteLLM")
    parser.add_argument("--seeds", type=int, default=2, help="RouteLLM CV splits")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/router_loto.json")
    args = parser.parse_args()

    started = time.monotonic()
    tables = read_score_tables(sorted((SHARED_DATA / "routerdc").glob("*_train.jsonl")))
    earned, groups = stack_tables(tables)
    layers = [args.layer, args.layer + 1]
    states = router_states(tables, layers, "loto")
    x = states[args.layer]
    rows = curve(x, earned, groups)
    defaults = yardstick(tables, x, {})
    print(json.dumps({k: v for k, v in defaults.items() if k != "left_out_files"}), flush=True)
    at_default = next(
        (r for r in rows if all(r[k] == defaults["fallback"][k] for k in fallback.NAMES)), None
    )
    result: dict[str, Any] = {
        "benchmark": "router_loto",
        "layer": args.layer,
        "tables": [t.name for t in tables],
        "curve": rows,
        "defaults": defaults,
        "chosen_by_inner_leave_one_out": yardstick(tables, x, dict.fromkeys(fallback.NAMES, -1.0)),
        "never_falls_back": yardstick(tables, x, dict(NEVER)),
    }
    others = ("chosen_by_inner_leave_one_out", "never_falls_back")
    print(json.dumps({k: result[k]["left_out"] for k in others}), flush=True)
    sentence = sentence_states(tables)
    result["features"] = {
        f"layer {args.layer}": {
            **{k: defaults[k] for k in ("stratified", "left_out")},
            "best_fallback": best_point(rows),
        },
    }
    for label, features in (
        (f"layers {args.layer}+{args.layer + 1}", joined(x, states[args.layer + 1])),
        (f"layer {args.layer} + sentence embedding", joined(x, sentence)),
        ("sentence embedding alone", sentence),
        (f"layer {args.layer} + difficulty signals", joined(x, difficulty(tables))),
    ):
        found = yardstick(tables, features, {})
        result["features"][label] = {k: found[k] for k in ("stratified", "left_out", "fallback")}
        # the defaults were chosen at the layer alone: each set's own best fallback too
        result["features"][label]["best_fallback"] = best_point(curve(features, earned, groups))
        print(label, json.dumps(result["features"][label]), flush=True)
    lm_tables = read_score_tables(sorted((SHARED_DATA / "routellm").glob("*_train.jsonl")))
    lm_x = router_states(lm_tables, layers, "loto-routellm")[args.layer]
    result["routellm"] = routellm(lm_x, lm_tables, args.clusters, args.seeds)
    result["seconds"] = round(time.monotonic() - started, 1)
    result["machine"] = machine()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    if at_default is not None:
        plot(rows, float(defaults["left_out"]["best_single"]), at_default,
             args.out.with_suffix(".png"))  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
