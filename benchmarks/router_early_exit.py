"""The router's per-query early exit against the shipped full-depth few-shot router.

A probe on an early layer (``router_model.probe``: taught which specialist each RouterDC
question belongs to, GSM8K → math, HumanEval → code, the rest → general, plus the cpu
profile's descriptions and examples) decides the queries it is sure of; the others run on
to the few-shot head at full depth. Two exit rules, each for every margin on a grid: the
probe's margin alone, and margin *or agreement* (the probe and a nearest-centroid head on
the profile's descriptions and examples at the same layer pick the same specialist).
Measured, against the few-shot head alone at full depth:

- accuracy and exit share on four sets: RouterDC (probe cross-validated, 5 folds by table),
  the shipped examples (leave-one-out for every head), ``benchmarks/data/everyday_tune.jsonl``
  (48 everyday questions written to choose the rule) and
  ``benchmarks/data/everyday_queries.jsonl`` (48 others, held out: they choose nothing);
- the chosen rule: of those losing no accuracy on RouterDC, the examples and the tuning
  set, the one that decides most of the tuning set early (ties: the higher RouterDC
  accuracy);
- latency of one decision as served (``build_router``, eager, 2 threads): full depth, the
  margin rule, the chosen rule and, when the profile ships another, that one
  (``shipped``), alternating query by query, on RouterDC questions and on both everyday
  sets.

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
from bench_common import NAMES, layered, task_table
from bench_common import ROUTERDC as DATA

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
TUNE = ROOT / "benchmarks" / "data" / "everyday_tune.jsonl"
RULES = ("margin", "agree")
MARGINS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]


def cascade(
    probe: np.ndarray, deep: np.ndarray, margin: float, second: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's choice and whether it exited, given probe, full-depth and (for the
    agreement rule) shallow few-shot scores."""
    out = exits(probe, margin, second)
    return np.where(out, probe.argmax(1), deep.argmax(1)), out


def timed(router: Any, queries: list[str]) -> tuple[list[float], list[int]]:
    seconds, layers = [], []
    for query in queries:
        started = time.perf_counter()
        decision = router.route(query)
        seconds.append(time.perf_counter() - started)
        layers.append(decision.layer)
    return seconds, layers


def read_set(path: Path) -> tuple[list[str], np.ndarray]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r["query"] for r in rows], np.array([NAMES.index(r["specialist"]) for r in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layer", type=int, default=1, help="Layer of the early exit.")
    parser.add_argument("--shot-weight", type=int, default=20)
    parser.add_argument("--l2", type=float, default=1000.0)
    parser.add_argument("--queries", type=int, default=200, help="RouterDC questions timed.")
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
    sets = {"tune": read_set(TUNE), "everyday": read_set(EVERYDAY)}
    model_dir = r.model.location(cache_dir)
    lm = HiddenStateEmbedder(model_dir, r.layer, r.max_query_tokens, dtype=r.dtype)
    lm.load()
    layers = sorted({args.layer, r.layer})
    embed = layered(lm, layers, "exit:", cache_dir)

    started = time.monotonic()
    x = embed(queries)
    xs = {name: embed(texts) for name, (texts, _) in sets.items()}
    shots = [embed([s.description, *s.examples]) for s in config.specialists]
    k, deep = args.layer, r.layer
    rows_k, shot_labels = shot_rows([s[k] for s in shots])
    rows_d, _ = shot_rows([s[deep] for s in shots])
    is_example = np.concatenate([np.arange(len(s[k])) > 0 for s in shots])  # not descriptions
    fit = {"shot_weight": args.shot_weight, "l2": args.l2}

    def few_shot(rows: np.ndarray, keep: np.ndarray) -> NearestCentroidHead:
        head = NearestCentroidHead(**r.head_params)
        head.fit_examples([rows[keep & (shot_labels == n)] for n in range(len(NAMES))])
        return head

    everything = np.ones(len(rows_d), dtype=bool)
    # per set: (probe, full-depth few-shot, shallow few-shot) scores and the right answers
    scores: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
    # RouterDC: probe out of fold, few-shot heads as shipped (they never saw these)
    scores["routerdc"] = (
        out_of_fold_probe(x[k], labels, groups, rows_k, shot_labels, len(NAMES), **fit),
        few_shot(rows_d, everything).predict(x[deep]),
        few_shot(rows_k, everything).predict(x[k]),
        labels,
    )
    # the shipped examples, each left out of every head
    examples = np.flatnonzero(is_example)
    held = [np.zeros((len(examples), len(NAMES))) for _ in range(3)]
    for i, row in enumerate(examples):
        keep = np.arange(len(rows_k)) != row
        probe = fit_probe(x[k], labels, rows_k[keep], shot_labels[keep], len(NAMES), **fit)
        held[0][i] = probe.predict(rows_k[row : row + 1])[0]
        held[1][i] = few_shot(rows_d, keep).predict(rows_d[row : row + 1])[0]
        held[2][i] = few_shot(rows_k, keep).predict(rows_k[row : row + 1])[0]
    scores["examples"] = (*held, shot_labels[examples])
    # the everyday sets: no head saw them
    full_probe = fit_probe(x[k], labels, rows_k, shot_labels, len(NAMES), **fit)
    deep_head, shallow_head = few_shot(rows_d, everything), few_shot(rows_k, everything)
    for name, (_, want) in sets.items():
        xv = xs[name]
        scores[name] = (
            full_probe.predict(xv[k]), deep_head.predict(xv[deep]), shallow_head.predict(xv[k]),
            want,
        )  # fmt: skip

    def scored(margin: float, agree: bool) -> dict[str, Any]:
        row: dict[str, Any] = {"margin": margin, "agree": agree}
        for name, (probe, full, shallow, want) in scores.items():
            choice, out = cascade(probe, full, margin, shallow if agree else None)
            hits = choice == want
            row[name] = round(
                group_accuracy(choice, want, groups) if name == "routerdc" else hits.mean(), 4
            )
            row[f"{name}_exit"] = round(float(out.mean()), 3)
        return row

    curves = {rule: [scored(m, rule == "agree") for m in MARGINS] for rule in RULES}
    base = scored(1.01, False)  # nothing exits: the few-shot head at full depth alone
    ok = [
        c
        for rule in RULES
        for c in curves[rule]
        if all(c[n] >= base[n] for n in ("routerdc", "examples", "tune"))
    ]
    chosen = max(ok, key=lambda c: (c["tune_exit"], c["routerdc"]))
    for row in [*curves["margin"], *curves["agree"], {**base, "margin": "full depth"}]:
        print(json.dumps(row), flush=True)
    print(f"chosen: {json.dumps(chosen)}", flush=True)
    shipped = r.early_exit
    if shipped is not None and (shipped.min_margin, shipped.agree) != (
        chosen["margin"],
        chosen["agree"],
    ):
        print(f"note: the cpu profile ships margin {shipped.min_margin}, agree {shipped.agree}")

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
        exit_ = {"exit_artifact": path, "exit_layer": k}
        margin_only = max(
            (c for c in curves["margin"] if c in ok), key=lambda c: (c["tune_exit"], c["routerdc"])
        )
        routers = {
            "full_depth": build_router(model_dir, profiles_, **common),
            "margin": build_router(
                model_dir, profiles_, **common, **exit_, exit_margin=margin_only["margin"]
            ),
            "chosen": build_router(
                model_dir,
                profiles_,
                **common,
                **exit_,
                exit_margin=chosen["margin"],
                exit_agree=chosen["agree"],
            ),
        }
        if shipped is not None and (shipped.min_margin, shipped.agree) != (
            chosen["margin"],
            chosen["agree"],
        ):  # the rule the profile ships is timed too
            routers["shipped"] = build_router(
                model_dir,
                profiles_,
                **common,
                **exit_,
                exit_margin=shipped.min_margin,
                exit_agree=shipped.agree,
            )
        rng = np.random.default_rng(0)
        sample = [queries[i] for i in rng.choice(len(queries), args.queries, replace=False)]
        timed_sets = {"routerdc": sample, **{n: texts for n, (texts, _) in sets.items()}}
        for name, texts in timed_sets.items():
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
        "sizes": {"routerdc": len(queries), "examples": len(examples)}
        | {n: len(t) for n, (t, _) in sets.items()},
        "full_depth_accuracy": base,
        "curves": curves,
        "chosen": chosen,
        "shipped": None if shipped is None else scored(shipped.min_margin, shipped.agree),
        "margin_only": margin_only,
        "latency": latency,
        "seconds": round(time.monotonic() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    plot(curves, base, args.out.with_suffix(".png"), k, deep)


def plot(
    curves: dict[str, list[dict[str, Any]]], base: dict[str, Any], path: Path, k: int, deep: int
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = (("routerdc", "RouterDC (cv)"), ("examples", "shipped examples (loo)"),
            ("tune", "everyday, tuning"), ("everyday", "everyday, held out"))  # fmt: skip
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    for (left, right), rule in zip(axes, RULES, strict=True):
        curve = curves[rule]
        margins = [c["margin"] for c in curve]
        for (name, label), color in zip(sets, ("C0", "C1", "C2", "C3"), strict=True):
            left.plot(margins, [c[name] for c in curve], "o-", color=color, label=label)
            left.axhline(base[name], color=color, ls=":", alpha=0.7)
            right.plot(margins, [c[f"{name}_exit"] for c in curve], "o-", color=color, label=label)
        title = "margin alone" if rule == "margin" else "margin or agreement"
        left.set_title(f"{title}: accuracy (dotted: layer {deep} alone)", fontsize=10)
        right.set_title(f"{title}: share decided at layer {k}", fontsize=10)
    for ax in axes[1]:
        ax.set_xlabel("min_margin")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"early exit at layer {k} against the few-shot head at layer {deep}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
