"""What the benchmark scripts share; each imports from here, never from another script
(``benchmarks/`` is on the path of its scripts): the data's folders, the questions the
load benchmarks send, a percentile, RouterDC questions sampled, the task-labelled tables,
several layers' states from one cached pass, fresh learned heads, and RouteLLM's
cross-validated figures."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from router_model.backbone import HiddenStateEmbedder
from router_model.embed_cache import cached_embeddings
from router_model.evaluate import cost_sweep
from router_model.heads import KnnHead, LearnedHead
from router_model.scores import ScoreTable, read_score_tables
from router_model.train import learned_head, out_of_fold, stack_tables

ROOT = Path(__file__).resolve().parents[1]
# the full tables, read at run time (the README's sample: examples/sample_score_tables)
SHARED_DATA = ROOT.parent / "shared" / "data"
ROUTERDC = SHARED_DATA / "routerdc"
TASK_SPECIALIST = {"gsm8k_train": "math", "humaneval_train": "code"}
NAMES = ["general", "code", "math"]

QUESTIONS = [
    "Write a Python function that reverses a list",
    "What is the capital of France?",
    "Explain what a hash table is.",
    "What is 17 times 23?",
]


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile by rank (NaN when there are no values)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def sample_queries(count: int) -> list[str]:
    tables = read_score_tables(sorted(ROUTERDC.glob("*_train.jsonl")))
    queries = [q for t in tables for q in t.queries]
    rng = np.random.default_rng(0)
    return [queries[i] for i in rng.choice(len(queries), size=count, replace=False)]


def task_table(table: ScoreTable) -> ScoreTable:
    """The table's questions, scored 1 for the specialist their task belongs to."""
    want = NAMES.index(TASK_SPECIALIST.get(table.name, "general"))
    scores = np.zeros((len(table), len(NAMES)))
    scores[:, want] = 1.0
    return ScoreTable(table.name, table.queries, NAMES, scores, ["positive"] * len(table))


def layered(
    lm: HiddenStateEmbedder,
    layers: list[int],
    tag: str,
    cache_dir: Path,
    progress: Callable[[int], None] | None = None,
) -> Callable[[list[str]], dict[int, np.ndarray]]:
    """Pooled states of several layers from one pass, cached on disk under ``tag``;
    ``progress(n)`` after each batch of ``n`` queries embedded."""
    key = lm.spec.fingerprint() + tag + ",".join(map(str, layers))

    def embed(texts: list[str]) -> dict[int, np.ndarray]:
        flat = cached_embeddings(
            lambda b: np.concatenate([v for _, v in sorted(lm.embed_layers(b, layers).items())], 1),
            key,
            texts,
            cache_dir / "router-embeddings",
            progress=progress,
        )
        return dict(zip(layers, np.split(flat, len(layers), 1), strict=True))

    return embed


def layer_states(
    model_dir: str,
    max_tokens: int,
    dtype: str,
    tables: list[ScoreTable],
    layers: list[int],
    tag: str,
) -> dict[int, np.ndarray]:
    """Every table's queries at every layer of the router LLM, from one forward pass
    (cached on disk under ``tag``), with a progress bar."""
    from rich.progress import Progress

    from orchestrator.settings import get_settings

    queries = [q for t in tables for q in t.queries]
    lm = HiddenStateEmbedder(model_dir, max(layers), max_tokens, dtype=dtype)
    lm.load()
    with Progress() as bars:
        task = bars.add_task(f"{tag} {len(queries)} queries, layers {layers}", total=len(queries))
        cache = Path(get_settings().cache_dir)
        embed = layered(lm, layers, tag + ":", cache, lambda n: bars.advance(task, n))
        return embed(queries)


def head_maker(name: str, params: dict[str, float | int]) -> Callable[[], LearnedHead]:
    """Fresh learned heads ``name`` of ``params``, one a call (for ``routellm_cv``)."""
    return lambda: learned_head(name, params)


def routellm_cv(
    tables: list[ScoreTable],
    x: np.ndarray,
    seeds: int,
    make: Callable[[], LearnedHead] = lambda: KnnHead(k=50, prior_weight=100),
) -> dict[str, float]:
    """APGR / CPT(50%) / CPT(80%) of the head ``make`` builds, 2-fold CV on the pooled
    tables, the mean over ``seeds`` splits."""
    earned, groups = stack_tables(tables)
    prices = json.loads((SHARED_DATA / "routellm" / "models.json").read_text())
    costs = np.array([prices[m]["usd_per_mtok_out"] for m in tables[0].models])
    out = []
    for seed in range(seeds):
        predicted = out_of_fold(make, x, earned, groups, 2, seed)
        sweep = cost_sweep(earned, predicted, np.tile(costs, (len(earned), 1)))
        out.append([sweep["apgr"], sweep["cpt50"], sweep["cpt80"]])
    apgr, cpt50, cpt80 = np.mean(out, axis=0)
    return {"apgr": float(apgr), "cpt50": float(cpt50), "cpt80": float(cpt80)}
