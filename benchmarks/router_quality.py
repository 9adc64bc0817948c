"""Router quality against depth: which layer of the router LLM to pool, measured on real data.

For each layer (and for MiniLM as an alternative backbone), from one forward pass:

- RouterDC (five train tables): 5-fold cross-validated accuracy (credit rule of the data
  README, unweighted mean over tables), repeated over seeds, for the kNN head with its
  task prior, the linear probe, and the prior alone ("send each task to its best model");
- RouteLLM (GPT-4 vs Mixtral train halves, pooled): 2-fold cross-validated APGR,
  CPT(50%) and CPT(80%) of the kNN head;
- few-shot: the config's nearest-centroid head (no score table) routing RouterDC queries
  to the specialist their task belongs to (GSM8K → math, HumanEval → code, else general).

Embeddings are cached under the mixserve cache dir. Writes
``benchmarks/results/router_quality.json`` and prints one line per backbone/layer.

    .venv/bin/python benchmarks/router_quality.py --layers 1 2 3 4 6 9 12 18
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_common import SHARED_DATA as DATA
from bench_common import routellm_cv

from orchestrator import profiles
from orchestrator.config import load_config
from orchestrator.settings import get_settings
from router_model.embed_cache import cached_embeddings
from router_model.heads import KnnHead, LinearHead, NearestCentroidHead
from router_model.scores import ScoreTable, read_score_tables
from router_model.train import out_of_fold, stack_tables

ROOT = Path(__file__).resolve().parents[1]
TASK_SPECIALIST = {"gsm8k_train": "math", "humaneval_train": "code"}


def routerdc_cv(tables: list[ScoreTable], x: np.ndarray, make: Any, seeds: int) -> dict[str, Any]:
    earned, groups = stack_tables(tables)
    runs = []
    for seed in range(seeds):
        predicted = out_of_fold(make, x, earned, groups, 5, seed)
        got = earned[np.arange(len(earned)), predicted.argmax(axis=1)]
        runs.append([float(got[groups == g].mean()) for g in range(len(tables))])
    per_table = np.mean(runs, axis=0)
    averages = np.mean(runs, axis=1)
    return {
        "average": float(averages.mean()),
        "average_sd_over_seeds": float(averages.std()),
        "files": {t.name: float(a) for t, a in zip(tables, per_table, strict=True)},
    }


def few_shot(config: Any, tables: list[ScoreTable], x: np.ndarray, embed: Any) -> float:
    names = [s.name for s in config.specialists]
    head = NearestCentroidHead(**config.router.head_params)
    head.fit_examples([embed([s.description, *s.examples]) for s in config.specialists])
    choice = head.predict(x).argmax(axis=1)
    _, groups = stack_tables(tables)
    want = np.array([names.index(TASK_SPECIALIST.get(t.name, "general")) for t in tables])
    hits = choice == want[groups]
    return float(np.mean([hits[groups == g].mean() for g in range(len(tables))]))


def measure(
    x: np.ndarray, xl: np.ndarray, dc: list[ScoreTable], rl: list[ScoreTable], seeds: int
) -> dict[str, Any]:
    return {
        "routerdc_knn": routerdc_cv(dc, x, lambda: KnnHead(k=50, prior_weight=100), seeds),
        "routerdc_linear": routerdc_cv(dc, x, lambda: LinearHead(l2=1000.0), seeds),
        "routellm_knn": routellm_cv(rl, xl, seeds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=profiles.FOLDER / "cpu.yaml")
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 2, 3, 4, 6, 9, 12, 18])
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/router_quality.json")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"routing data not found at {DATA}: this benchmark needs ../shared/data")
    from retrieval import Embedder
    from router_model.backbone import HiddenStateEmbedder

    config = load_config(args.config)
    dc = read_score_tables(sorted((DATA / "routerdc").glob("*_train.jsonl")))
    rl = read_score_tables(sorted((DATA / "routellm").glob("*_train.jsonl")))
    cache = get_settings().cache_dir / "router-embeddings"
    top = max(args.layers)
    lm = HiddenStateEmbedder(
        config.router.model.location(get_settings().cache_dir), top, args.max_tokens
    )
    lm.load()
    results: dict[str, Any] = {"max_tokens": args.max_tokens, "seeds": args.seeds, "rows": []}
    started = time.monotonic()
    stacked: dict[str, dict[int, np.ndarray]] = {}
    for name, tables in (("routerdc", dc), ("routellm", rl)):
        queries = [q for t in tables for q in t.queries]
        width = lm.spec.fingerprint() + ",".join(map(str, args.layers))
        flat = cached_embeddings(
            lambda texts: np.concatenate(
                [v for _, v in sorted(lm.embed_layers(texts, args.layers).items())], axis=1
            ),
            width,
            queries,
            cache,
        )
        stacked[name] = dict(
            zip(sorted(args.layers), np.split(flat, len(args.layers), 1), strict=True)
        )
    prior = routerdc_cv(
        dc, stacked["routerdc"][top], lambda: KnnHead(k=50, prior_weight=1e12), args.seeds
    )
    results["routerdc_task_prior"] = prior
    print(f"task prior alone: RouterDC CV {prior['average']:.4f}", flush=True)
    for layer in sorted(args.layers):
        x, xl = stacked["routerdc"][layer], stacked["routellm"][layer]
        row = {"backbone": "gemma", "layer": layer, **measure(x, xl, dc, rl, args.seeds)}
        row["few_shot_task_routing"] = few_shot(
            config, dc, x, lambda texts, n=layer: lm.embed_layers(texts, [n])[n]
        )
        results["rows"].append(row)
        print(_line(row), flush=True)
    minilm = Embedder(config.retrieval.embedding.package, "fp32")
    minilm.load()
    mx = {
        name: cached_embeddings(minilm.embed, "minilm", [q for t in ts for q in t.queries], cache)
        for name, ts in (("routerdc", dc), ("routellm", rl))
    }
    row = {
        "backbone": "minilm",
        "layer": None,
        **measure(mx["routerdc"], mx["routellm"], dc, rl, args.seeds),
    }
    row["few_shot_task_routing"] = few_shot(config, dc, mx["routerdc"], minilm.embed)
    results["rows"].append(row)
    print(_line(row), flush=True)
    results["seconds"] = round(time.monotonic() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


def _line(row: dict[str, Any]) -> str:
    rl = row["routellm_knn"]
    return (
        f"{row['backbone']:6s} layer {row['layer']!s:>4s}: RouterDC CV knn "
        f"{row['routerdc_knn']['average']:.4f} linear {row['routerdc_linear']['average']:.4f}"
        f" | RouteLLM APGR {rl['apgr']:.3f} CPT50 {rl['cpt50']:.3f} CPT80 {rl['cpt80']:.3f}"
        f" | few-shot task routing {row['few_shot_task_routing']:.3f}"
    )


if __name__ == "__main__":
    main()
