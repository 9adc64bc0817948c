"""The router's per-query early exit against the shipped full-depth few-shot router.

A probe on an early layer (``router_model.probe``: taught which specialist each RouterDC
question belongs to, GSM8K → math, HumanEval → code, the rest → general, plus the cpu
profile's descriptions and examples) decides the queries it is sure of; the others run on
to the few-shot head at full depth. Measured, for every margin on a grid:

- accuracy and exit share on three sets, against the few-shot head alone at full depth:
  RouterDC (probe cross-validated, 5 folds by table), the shipped examples (leave-one-out
  for probe and few-shot head alike), and ``benchmarks/data/everyday_queries.jsonl`` (48
  everyday questions written for this benchmark, seen by neither: a held-out check);
- the chosen margin: the smallest at which neither RouterDC nor the shipped examples
  lose accuracy (the everyday set plays no part in choosing it);
- latency of one decision as served (``build_router``, eager, 2 threads), the early exit
  at the profile's margin (``--margin`` for another) against the full-depth router,
  alternating query by query, on RouterDC questions (what ``mixserve bench`` sends) and on
  the everyday set.

Writes ``benchmarks/results/router_early_exit.json`` and a PNG of the accuracy curves.

    .venv/bin/python benchmarks/router_early_exit.py --layer 1
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from router_shallow import DATA, NAMES, layered, task_table

from loadgen.report import percentiles_ms
from orchestrator import profiles
from orchestrator.config import load_config
from orchestrator.settings import get_settings
from router_model import SpecialistProfile, build_router
from router_model.artifact import RouterArtifact, save_artifact
from router_model.backbone import HiddenStateEmbedder
from router_model.early_exit import exits
from router_model.heads import NearestCentroidHead
from router_model.probe import fit_probe, group_accuracy, out_of_fold_probe, shot_rows
from router_model.scores import read_score_tables

ROOT = Path(__file__).resolve().parents[1]
EVERYDAY = ROOT / "benchmarks" / "data" / "everyday_queries.jsonl"
MARGINS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]


def cascade(probe: np.ndarray, deep: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Each row's choice and whether it exited, given probe and full-depth scores."""
    out = exits(probe, margin)
    return np.where(out, probe.argmax(1), deep.argmax(1)), out


def timed(router: Any, queries: list[str]) -> tuple[list[float], list[int]]:
    seconds, layers = [], []
    for query in queries:
        started = time.perf_counter()
        decision = router.route(query)
        seconds.append(time.perf_counter() - started)
        layers.append(decision.layer)
    return seconds, layers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layer", type=int, default=1, help="Layer of the early exit.")
    parser.add_argument("--shot-weight", type=int, default=20)
    parser.add_argument("--l2", type=float, default=1000.0)
    parser.add_argument("--queries", type=int, default=200, help="RouterDC questions timed.")
    parser.add_argument("--margin", type=float, help="Margin timed (default: the profile's).")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks/results/router_early_exit.json"
    )
    args = parser.parse_args()

    config = load_config(profiles.FOLDER / "cpu.yaml")
    assert [s.name for s in config.specialists] == NAMES, "the cpu profile's three specialists"
    r, cache_dir = config.router, get_settings().cache_dir
    tables = [task_table(t) for t in read_score_tables(sorted(DATA.glob("*_train.jsonl")))]
    queries = [q for t in tables for q in t.queries]
    groups = np.concatenate([np.full(len(t), i) for i, t in enumerate(tables)])
    labels = np.concatenate([t.scores.argmax(axis=1) for t in tables])
    every = [json.loads(line) for line in EVERYDAY.read_text().splitlines() if line.strip()]
    every_labels = np.array([NAMES.index(e["specialist"]) for e in every])
    model_dir = r.model.location(cache_dir)
    lm = HiddenStateEmbedder(model_dir, r.layer, r.max_query_tokens, dtype=r.dtype)
    lm.load()
    layers = sorted({args.layer, r.layer})
    embed = layered(lm, layers, "exit:", cache_dir)

    started = time.monotonic()
    x, xv = embed(queries), embed([e["query"] for e in every])
    shots = [embed([s.description, *s.examples]) for s in config.specialists]
    k, deep = args.layer, r.layer
    rows_k, shot_labels = shot_rows([s[k] for s in shots])
    rows_d, _ = shot_rows([s[deep] for s in shots])
    is_example = np.concatenate([np.arange(len(s[k])) > 0 for s in shots])  # not descriptions
    fit = {"shot_weight": args.shot_weight, "l2": args.l2}

    def few_shot(keep: np.ndarray) -> NearestCentroidHead:
        head = NearestCentroidHead(**r.head_params)
        head.fit_examples([rows_d[keep & (shot_labels == n)] for n in range(len(NAMES))])
        return head

    everything = np.ones(len(rows_d), dtype=bool)
    # RouterDC: probe out of fold, few-shot head as shipped (it never saw these)
    dc_probe = out_of_fold_probe(x[k], labels, groups, rows_k, shot_labels, len(NAMES), **fit)
    dc_deep = few_shot(everything).predict(x[deep])
    # the shipped examples, each left out of probe and few-shot head alike
    examples = np.flatnonzero(is_example)
    ex_probe, ex_deep = np.zeros((len(examples), 3)), np.zeros((len(examples), 3))
    for i, row in enumerate(examples):
        keep = np.arange(len(rows_k)) != row
        probe = fit_probe(x[k], labels, rows_k[keep], shot_labels[keep], len(NAMES), **fit)
        ex_probe[i] = probe.predict(rows_k[row : row + 1])[0]
        ex_deep[i] = few_shot(keep).predict(rows_d[row : row + 1])[0]
    ex_labels = shot_labels[examples]
    # everyday: neither saw them
    full_probe = fit_probe(x[k], labels, rows_k, shot_labels, len(NAMES), **fit)
    ev_probe, ev_deep = full_probe.predict(xv[k]), few_shot(everything).predict(xv[deep])

    def scored(margin: float) -> dict[str, Any]:
        dc, dc_out = cascade(dc_probe, dc_deep, margin)
        ex, ex_out = cascade(ex_probe, ex_deep, margin)
        ev, ev_out = cascade(ev_probe, ev_deep, margin)
        return {
            "margin": margin,
            "routerdc": round(group_accuracy(dc, labels, groups), 4),
            "routerdc_exit": round(float(dc_out.mean()), 3),
            "examples": round(float((ex == ex_labels).mean()), 4),
            "examples_exit": round(float(ex_out.mean()), 3),
            "everyday": round(float((ev == every_labels).mean()), 4),
            "everyday_exit": round(float(ev_out.mean()), 3),
        }

    curve = [scored(m) for m in MARGINS]
    base = scored(1.01)  # nothing exits: the few-shot head at full depth alone
    ok = [
        c for c in curve if c["routerdc"] >= base["routerdc"] and c["examples"] >= base["examples"]
    ]
    chosen = min(ok, key=lambda c: c["margin"])
    for row in [*curve, {**base, "margin": "full depth"}]:
        print(json.dumps(row), flush=True)
    print(f"chosen margin {chosen['margin']}: {json.dumps(chosen)}", flush=True)
    shipped = r.early_exit.min_margin if r.early_exit else float(chosen["margin"])
    margin = shipped if args.margin is None else args.margin

    profiles_ = [
        SpecialistProfile(s.name, s.description, list(s.examples)) for s in config.specialists
    ]
    latency: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        spec = HiddenStateEmbedder(model_dir, k, r.max_query_tokens, dtype=r.dtype).spec
        artifact = RouterArtifact("linear", full_probe, spec, r.model.label(), NAMES, {}, fit)
        path = save_artifact(artifact, Path(tmp) / "probe")
        common = {"layer": deep, "max_query_tokens": r.max_query_tokens, "dtype": r.dtype,
                  "threads": 2, "head": r.head, "head_params": r.head_params}  # fmt: skip
        routers = {
            "full_depth": build_router(model_dir, profiles_, **common),
            "early_exit": build_router(
                model_dir,
                profiles_,
                **common,
                exit_artifact=path,
                exit_layer=k,
                exit_margin=margin,
            ),
        }
        rng = np.random.default_rng(0)
        sample = [queries[i] for i in rng.choice(len(queries), args.queries, replace=False)]
        for name, texts in (("routerdc", sample), ("everyday", [e["query"] for e in every])):
            runs: dict[str, tuple[list[float], list[int]]] = {v: ([], []) for v in routers}
            for router in routers.values():
                timed(router, texts[:4])  # warm
            for text in texts:  # alternating, query by query
                for variant, router in routers.items():
                    s, l_ = timed(router, [text])
                    runs[variant][0].extend(s)
                    runs[variant][1].extend(l_)
            latency[name] = {
                v: {
                    "ms": percentiles_ms(s),
                    "exit_share": round(float(np.mean(np.equal(l_, k))), 3),
                }
                for v, (s, l_) in runs.items()
            }
            print(name, json.dumps(latency[name]), flush=True)
    result = {
        "benchmark": "router_early_exit",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "exit_layer": k,
        "full_depth": deep,
        "probe": fit,
        "sizes": {"routerdc": len(queries), "examples": len(examples), "everyday": len(every)},
        "full_depth_accuracy": base,
        "curve": curve,
        "chosen": chosen,
        "timed_margin": margin,
        "latency": latency,
        "seconds": round(time.monotonic() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    plot(curve, base, args.out.with_suffix(".png"), k, deep)


def plot(curve: list[dict[str, Any]], base: dict[str, Any], path: Path, k: int, deep: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    margins = [c["margin"] for c in curve]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for (name, label), color in zip(
        (("routerdc", "RouterDC (cv)"), ("examples", "shipped examples (loo)"),
         ("everyday", "everyday (held out)")), ("C0", "C1", "C2"), strict=True,
    ):  # fmt: skip
        left.plot(margins, [c[name] for c in curve], "o-", color=color, label=label)
        left.axhline(base[name], color=color, ls=":", alpha=0.7)
        right.plot(margins, [c[f"{name}_exit"] for c in curve], "o-", color=color, label=label)
    left.set_xlabel("min_margin")
    left.set_ylabel(f"routing accuracy (dotted: layer {deep} alone)")
    left.legend()
    right.set_xlabel("min_margin")
    right.set_ylabel(f"share decided at layer {k}")
    right.legend()
    fig.suptitle(f"early exit at layer {k} against the few-shot head at layer {deep}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
