"""Search at scale: recall@10 against exact search, single-query latency and memory per
vector of each index kind, on ``n`` vectors of dimension 384.

The vectors: real MiniLM (int8) embeddings of the corpus's chunks; the rest synthetic
(``synthetic``: by default a real vector moved by half the difference of two others).
The queries: first sentences of real chunks (short texts like users' questions),
embedded now, not in the index. Ground truth: exact inner-product search (FAISS
``Flat``) over all vectors. Each index is built with ``retrieval.indexes`` (what
``mixserve index build`` runs) and searched with ``indexes.search`` (what the retriever
runs); its search parameter is swept, every point timed one query at a time on one
thread.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from mixserve_bench.retrieval_eval.corpus import MODEL
from retrieval import indexes
from retrieval.embed import Embedder

SWEEP = {
    "hnsw": ("efSearch", indexes.EF_STEPS[:11]),
    "ivfpq": ("nprobe", indexes.NPROBE_STEPS[:13]),
}
TARGET_RECALL, TARGET_P50_MS = 0.95, 1.0


def synthetic(real: np.ndarray, count: int, how: str = "shaped", seed: int = 7) -> np.ndarray:
    """``count`` vectors made from the real ones. ``shaped``: a real vector moved by half
    the difference of two others (the step follows the corpus's own spread, so the set
    keeps its low intrinsic dimension). ``isotropic``: a real vector plus a third of
    another plus a random direction of norm 0.6 (noise in all 384 dimensions: the hard
    case for graph indexes, far from what a corpus looks like)."""
    rng = np.random.default_rng(seed)
    out = np.empty((count, real.shape[1]), dtype=np.float32)
    for start in range(0, count, 100_000):
        n = min(100_000, count - start)
        pick = [real[rng.integers(0, len(real), n)] for _ in range(3)]
        if how == "shaped":
            v = pick[0] + 0.5 * (pick[1] - pick[2])
        else:
            noise = rng.normal(size=(n, real.shape[1])).astype(np.float32)
            noise /= np.linalg.norm(noise, axis=1, keepdims=True)
            v = pick[0] + pick[1] / 3 + 0.6 * noise
        out[start : start + n] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def queries_from(chunks: list[dict[str, Any]], count: int, cache: Path) -> np.ndarray:
    """Embedded headings-or-first-lines of random chunks (the query texts differ from
    every indexed chunk text)."""
    rng = np.random.default_rng(3)
    picks = rng.choice(len(chunks), count * 3, replace=False)
    texts = list(dict.fromkeys(str(chunks[i]["text"]).split(".")[0][:120] for i in picks))
    embedder = Embedder(MODEL, "int8", 128, cache)
    embedder.load()
    return embedder.embed(texts[:count])


def timed(index: Any, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, list[float]]:
    found = np.empty((len(queries), k), dtype=np.int64)
    times = []
    for i, q in enumerate(queries):
        started = time.perf_counter()
        _, ids = indexes.search(index, q[None, :], k)
        times.append((time.perf_counter() - started) * 1000)
        found[i] = ids[0]
    return found, times


def measure(
    kind: str, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, keep: dict[str, Any]
) -> dict[str, Any]:
    import faiss

    plan = indexes.choose(len(vectors), vectors.shape[1], kind)  # type: ignore[arg-type]
    faiss.omp_set_num_threads(2)
    started = time.perf_counter()
    with Progress(f"building {plan.factory}", BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=Console(stderr=True)) as bars:  # fmt: skip
        task = bars.add_task("build", total=len(vectors))
        index = indexes.build(
            vectors, plan, added=lambda done, _: bars.update(task, completed=done)
        )
    build_s = time.perf_counter() - started
    faiss.omp_set_num_threads(1)  # one query at a time, as a request does
    curve = []
    name, steps = SWEEP.get(kind, ("", (0,)))
    for value in steps:
        if name:
            plan.params = {
                name: value,
                **({"k_factor_rf": indexes.REFINE_K} if kind == "ivfpq" else {}),
            }
            indexes.apply(index, plan)
        timed(index, queries[:50])  # warm
        found, times = timed(index, queries)
        point: dict[str, Any] = {
            "param": {name: value} if name else {},
            "recall_at_10": indexes.recall_at_10(found, truth),
            "p50_ms": float(np.percentile(times, 50)),
            "p99_ms": float(np.percentile(times, 99)),
        }
        curve.append(point)
        if point["recall_at_10"] >= 0.995:
            break
    keep[kind] = index
    return {
        "kind": kind,
        "factory": plan.factory,
        "build_s": build_s,
        "bytes_per_vector": indexes.bytes_per_vector(index),
        "curve": curve,
    }


def sharded(
    index: Any, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, shards: int
) -> dict[str, Any]:
    """The IVF-PQ index at the smallest nprobe reaching recall 0.95 on the queries,
    searched whole and split over ``shards`` Ray actors (a local Ray started here):
    the share of identical top-10s and the single-query latency of each."""
    import ray

    from retrieval.shards import start_shards

    plan = indexes.choose(len(vectors), vectors.shape[1], "ivfpq")
    for nprobe in indexes.NPROBE_STEPS:
        plan.params = {"nprobe": nprobe, "k_factor_rf": indexes.REFINE_K}
        indexes.apply(index, plan)
        if indexes.recall_at_10(indexes.search(index, queries, 10)[1], truth) >= 0.95:
            break
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    try:
        search = start_shards(index, plan, shards, num_cpus=0.25)
        _, expected = indexes.search(index, queries, 10)
        _, found = search.search(queries, 10)
        whole: list[float] = []
        split_ms: list[float] = []
        whole_search = functools.partial(indexes.search, index)
        for i, q in enumerate(queries[:300]):  # alternating, one query at a time
            for run, times in ((whole_search, whole), (search.search, split_ms)) if i % 2 else (
                (search.search, split_ms), (whole_search, whole)):  # fmt: skip
                started = time.perf_counter()
                run(q[None, :], 10)
                times.append((time.perf_counter() - started) * 1000)
    finally:
        ray.shutdown()
    return {
        "shards": shards,
        "factory": plan.factory,
        "params": plan.params,
        "identical_share": float(
            np.mean([(a == b).all() for a, b in zip(found, expected, strict=True)])
        ),
        "p50_ms_unsharded": float(np.median(whole)),
        "p50_ms_sharded": float(np.median(split_ms)),
    }


def scale(
    real: np.ndarray,
    chunks: list[dict[str, Any]],
    n: int,
    queries: int,
    kinds: list[str],
    shards: int,
    how: str,
    cache: Path,
) -> dict[str, Any]:
    """Every index kind of ``kinds`` over ``n`` vectors (``real`` first, then synthetic
    ones), and the IVF-PQ index split over ``shards`` Ray actors (0: not split)."""
    import faiss

    real = real[:n]
    vectors = np.concatenate([real, synthetic(real, n - len(real), how)]) if n > len(real) else real
    asked = queries_from(chunks, queries, cache)
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    _, truth = exact.search(asked, 10)
    del exact
    results: list[dict[str, Any]] = []
    built: dict[str, Any] = {}
    for kind in kinds:
        r = measure(kind, vectors, asked, truth, built)
        r["n_vectors"] = len(vectors)
        results.append(r)
    return {
        "n_vectors": len(vectors),
        "n_real": len(real),
        "synthetic": how,
        "queries": f"{len(asked)} first sentences of random real chunks, embedded (int8 MiniLM)",
        "chosen": best_point(results),
        "indexes": results,
        "sharded": sharded(built["ivfpq"], vectors, asked, truth, shards)
        if shards and "ivfpq" in built
        else None,
    }


def best_point(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest point meeting both targets; when none does, the best recall within
    the latency target (or the fastest point, when none is within it)."""
    points = [
        {"kind": r["kind"], "factory": r["factory"], "bytes_per_vector": r["bytes_per_vector"], **p}
        for r in results
        for p in r["curve"]
    ]
    meeting = [
        p for p in points if p["recall_at_10"] >= TARGET_RECALL and p["p50_ms"] <= TARGET_P50_MS
    ]
    if meeting:
        return {**min(meeting, key=lambda p: p["p50_ms"]), "meets_targets": True}
    fast = [p for p in points if p["p50_ms"] <= TARGET_P50_MS]
    best = (
        max(fast, key=lambda p: p["recall_at_10"])
        if fast
        else min(points, key=lambda p: p["p50_ms"])
    )
    return {**best, "meets_targets": False}


def summary(
    scaled: dict[str, Any], ingested: dict[str, Any], grounded: dict[str, Any]
) -> dict[str, Any]:
    """The figures the targets are stated in, for the configuration chosen."""
    chosen = scaled["chosen"]
    return {
        "n_vectors": scaled["n_vectors"],
        "recall_at_10": round(chosen["recall_at_10"], 4),
        "p50_ms": round(chosen["p50_ms"], 3),
        "bytes_per_vector": round(chosen["bytes_per_vector"], 1),
        "ingest_chunks_per_s": round(ingested["build"]["chunks_per_s"], 1),
        "grounding_top5": grounded["grounding_top5"],
        "sharded_identical": None
        if scaled["sharded"] is None
        else scaled["sharded"]["identical_share"],
        "index": {"kind": chosen["kind"], "factory": chosen["factory"], "param": chosen["param"]},
    }


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in results:
        xs = [p["p50_ms"] for p in r["curve"]]
        ys = [p["recall_at_10"] for p in r["curve"]]
        ax.plot(xs, ys, marker="o", label=f"{r['factory']} ({r['bytes_per_vector']:.0f} B/vector)")
    ax.axhline(0.95, color="grey", linestyle=":")
    ax.axvline(1.0, color="grey", linestyle=":")
    ax.set_xscale("log")
    ax.set_xlabel("single-query p50 (ms, one thread)")
    ax.set_ylabel("recall@10 vs exact")
    ax.set_title(f"{results[0]['n_vectors']:,} vectors, dim 384, 2-core CPU")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
