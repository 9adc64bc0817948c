"""A shallow router for the cpu profile: a linear probe on an early layer of the router
LLM, taught which kind of specialist (general, code, math) each real question belongs
to, against the shipped default it would replace (the few-shot head at full depth).

Task labels: GSM8K → math, HumanEval → code, the other RouterDC tables → general (the
data README's task of each file). Measured, per layer, from one forward pass:

- RouterDC task routing: 5-fold cross-validated (stratified by table), the unweighted
  mean over the five tables, the same figure the few-shot head is judged by;
- the shipped examples, routed by a probe fitted on RouterDC alone (held out entirely),
  and leave-one-out: fitted on RouterDC and the other examples (each weighted
  ``--example-weight`` times), against the few-shot head leave-one-out at that layer.

How long a decision takes at each depth is ``benchmarks/router_latency.py``'s.

With ``--write-artifact DIR --layer N`` it fits the probe on every RouterDC question and
the shipped examples and writes a router artifact (``router.json`` + ``head.npz``: the
probe's mean, scale and weights, no question text) for ``router.artifact``.

    .venv/bin/python benchmarks/router_shallow.py --layers 1 2 3 4 6 18
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_common import NAMES, ROUTERDC, layered, task_table

from orchestrator import profiles
from orchestrator.config import load_config
from orchestrator.settings import get_settings
from router_model.artifact import RouterArtifact, save_artifact
from router_model.backbone import HiddenStateEmbedder
from router_model.heads import LinearHead, NearestCentroidHead
from router_model.scores import read_score_tables
from router_model.train import out_of_fold

ROOT = Path(__file__).resolve().parents[1]
DATA = ROUTERDC


def accuracy(choice: np.ndarray, want: np.ndarray, groups: np.ndarray) -> float:
    hits = choice == want
    return float(np.mean([hits[groups == g].mean() for g in np.unique(groups)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 2, 3, 4, 6, 18])
    parser.add_argument("--l2", type=float, default=1000.0)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--example-weight", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/router_shallow.json")
    parser.add_argument("--write-artifact", type=Path, help="write the probe of --layer here")
    parser.add_argument("--layer", type=int, default=2, help="layer of the written artifact")
    args = parser.parse_args()

    config = load_config(profiles.FOLDER / "cpu.yaml")
    assert [s.name for s in config.specialists] == NAMES, "the cpu profile's three specialists"
    r = config.router
    cache_dir = get_settings().cache_dir
    tables = [task_table(t) for t in read_score_tables(sorted(DATA.glob("*_train.jsonl")))]
    queries = [q for t in tables for q in t.queries]
    groups = np.concatenate([np.full(len(t), i) for i, t in enumerate(tables)])
    want = np.concatenate([t.scores.argmax(axis=1) for t in tables])
    examples = [(q, NAMES.index(s.name)) for s in config.specialists for q in s.examples]
    top = max([*args.layers, args.layer])
    lm = HiddenStateEmbedder(r.model.location(cache_dir), top, r.max_query_tokens, dtype=r.dtype)
    lm.load()
    layers = sorted(set([*args.layers, args.layer]))
    embed_all = layered(lm, layers, "task:", cache_dir)

    started = time.monotonic()
    x = embed_all(queries)
    xe = embed_all([q for q, _ in examples])
    ye = np.array([n for _, n in examples])
    earned = np.concatenate([t.scores for t in tables])
    rows: list[dict[str, Any]] = []
    for layer in layers:
        cv = [
            accuracy(
                out_of_fold(
                    lambda: LinearHead(l2=args.l2), x[layer], earned, groups, 5, seed
                ).argmax(1),
                want,
                groups,
            )
            for seed in range(args.seeds)
        ]
        probe = LinearHead(l2=args.l2)
        probe.fit_scores(x[layer], earned, groups)
        held_out = float((probe.predict(xe[layer]).argmax(1) == ye).mean())
        described = [lm.embed_layers([s.description], [layer])[layer] for s in config.specialists]
        few = NearestCentroidHead(**r.head_params)
        few.fit_examples([np.concatenate([d, xe[layer][ye == n]]) for n, d in enumerate(described)])
        few_dc = accuracy(few.predict(x[layer]).argmax(1), want, groups)
        probe_loo = few_loo = 0
        for i in range(len(ye)):
            keep = np.arange(len(ye)) != i
            w = args.example_weight
            loo = LinearHead(l2=args.l2)
            loo.fit_scores(
                np.concatenate([x[layer], *[xe[layer][keep]] * w]),
                np.concatenate([earned, *[np.eye(len(NAMES))[ye[keep]]] * w]),
                np.zeros(len(x[layer]) + w * int(keep.sum()), dtype=int),
            )
            probe_loo += int(loo.predict(xe[layer][i : i + 1]).argmax() == ye[i])
            centroid = NearestCentroidHead(**r.head_params)
            centroid.fit_examples(
                [np.concatenate([d, xe[layer][keep & (ye == n)]]) for n, d in enumerate(described)]
            )
            few_loo += int(centroid.predict(xe[layer][i : i + 1]).argmax() == ye[i])
        row = {
            "layer": layer,
            "probe_routerdc_cv": round(statistics.mean(cv), 4),
            "probe_routerdc_cv_sd": round(statistics.pstdev(cv), 4),
            "probe_shipped_examples_unseen": round(held_out, 4),
            "probe_shipped_examples_loo": round(probe_loo / len(ye), 4),
            "few_shot_routerdc": round(few_dc, 4),
            "few_shot_shipped_examples_loo": round(few_loo / len(ye), 4),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {
        "benchmark": "router_shallow",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "questions": len(queries),
        "tables": [t.name for t in tables],
        "l2": args.l2,
        "seeds": args.seeds,
        "rows": rows,
        "seconds": round(time.monotonic() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    if args.write_artifact:
        shallow = HiddenStateEmbedder(
            r.model.location(cache_dir), args.layer, r.max_query_tokens, dtype=r.dtype
        )
        probe = LinearHead(l2=args.l2)
        xs = np.concatenate([x[args.layer], xe[args.layer]])
        labels = np.concatenate([earned, np.eye(len(NAMES))[ye]])
        probe.fit_scores(xs, labels, np.zeros(len(xs), dtype=int))
        row = next(r for r in rows if r["layer"] == args.layer)
        meta = {
            "labels": "task of each RouterDC table, and the shipped examples",
            "questions": len(xs),
            "l2": args.l2,
            "measured": row,
        }
        artifact = RouterArtifact("linear", probe, shallow.spec, r.model.label(), NAMES, {}, meta)
        print(f"wrote {save_artifact(artifact, args.write_artifact)}")


if __name__ == "__main__":
    main()
