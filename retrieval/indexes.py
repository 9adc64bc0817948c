"""FAISS indexes for a collection: chosen by size (or named in config), built, and their
search parameter set from a recall target measured at build time.

- ``flat``: exact inner product. Small collections (up to ``FLAT_MAX`` vectors).
- ``hnsw``: a graph (``HNSW32``) over the full vectors; ``efSearch`` tuned. Low latency,
  about 4·dim + 256 bytes per vector.
- ``ivfpq``: inverted lists over product-quantized codes, re-ranked with 8-bit scalar
  codes (``IVF{nlist}_HNSW32,PQ{dim/8}x8,Refine(SQ8)``), trained on a sample; ``nprobe``
  tuned. Large collections: about dim/8 + dim + 8 bytes per vector.

Recall is measured as FAISS's benchmarks do, against exact search, with held-out
queries: a sample of the collection's own vectors, each excluding itself from both lists.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Kind = Literal["flat", "hnsw", "ivfpq"]
FLAT_MAX = 20_000
HNSW_MAX = 2_000_000
HNSW_M = 32
# graph quality: at 1M MiniLM vectors, efConstruction 64 left recall@10 at 0.91 by
# efSearch 256 (0.94 ms); 256 reaches 0.958 by efSearch 128 (0.71 ms), for a build
# about 4x longer (still far less than embedding the chunks)
EF_CONSTRUCTION = 256
EF_STEPS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
REFINE_K = 16  # IVF-PQ candidates re-ranked per hit wanted, with the 8-bit codes
NPROBE_STEPS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)


@dataclass
class IndexPlan:
    kind: Kind
    factory: str
    params: dict[str, int] = field(default_factory=dict)
    recall_at_10: float | None = None  # measured at build time with ``params``
    target_recall: float = 0.95

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "factory": self.factory,
            "params": dict(self.params),
            "recall_at_10": self.recall_at_10,
            "target_recall": self.target_recall,
        }


def choose(n: int, dim: int, kind: Kind | Literal["auto"] = "auto") -> IndexPlan:
    """The index for ``n`` vectors of ``dim``: by size unless ``kind`` names one."""
    if kind == "auto":
        kind = "flat" if n <= FLAT_MAX else "hnsw" if n <= HNSW_MAX else "ivfpq"
    if kind == "flat":
        return IndexPlan("flat", "Flat")
    if kind == "hnsw":
        return IndexPlan("hnsw", f"HNSW{HNSW_M},Flat")
    if dim % 8:
        raise ValueError(f"ivfpq needs a dimension divisible by 8, not {dim}")
    nlist = max(16, min(65536, 2 ** round(math.log2(4 * math.sqrt(max(n, 1))))))
    return IndexPlan("ivfpq", f"IVF{nlist}_HNSW32,PQ{dim // 8}x8,Refine(SQ8)")


def build(
    vectors: np.ndarray,
    plan: IndexPlan,
    train_size: int = 100_000,
    added: Callable[[int, int], None] | None = None,
) -> Any:
    """An index over ``vectors`` (ids are row numbers). IVF-PQ trains on a sample.
    ``added(done, total)`` is called as vectors go in (a large graph takes minutes)."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    index = faiss.index_factory(dim, plan.factory, faiss.METRIC_INNER_PRODUCT)
    if plan.kind == "hnsw":
        faiss.downcast_index(index).hnsw.efConstruction = EF_CONSTRUCTION  # type: ignore[attr-defined]
    if not index.is_trained:
        nlist = faiss.extract_index_ivf(index).nlist
        if n < max(nlist, 256):
            raise ValueError(f"{plan.factory} needs at least {max(nlist, 256)} vectors to train")
        rng = np.random.default_rng(0)
        sample = vectors[rng.choice(n, min(n, max(train_size, 39 * nlist)), replace=False)]
        index.train(sample)
    for i in range(0, n, 65536):
        index.add(vectors[i : i + 65536])
        if added is not None:
            added(min(i + 65536, n), n)
    return index


def apply(index: Any, plan: IndexPlan) -> None:
    """Set the plan's search parameters on a loaded index."""
    import faiss

    if not plan.params:
        return
    space = faiss.ParameterSpace()
    for name, value in plan.params.items():
        space.set_index_parameter(index, name, value)


def search(index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, rows) of each query's top ``k``, best first. An IVF-PQ index is searched
    in its two stages here: FAISS's PQ search for ``k_factor``·k candidates, then their
    8-bit codes' scores (``refined_scores``), ties broken by row, as they are for
    ``Flat``; the shards of a split collection compute the same scores, so their merged
    top-k is this one."""
    import faiss

    queries = np.ascontiguousarray(queries, dtype=np.float32)
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexFlat):  # equal scores in row order, as shards merge
        scores, rows = index.search(queries, min(2 * k, max(index.ntotal, k)))
        order = np.stack([np.lexsort((r, -s))[:k] for s, r in zip(scores, rows, strict=True)])
        return np.take_along_axis(scores, order, 1), np.take_along_axis(rows, order, 1)
    if not isinstance(index, faiss.IndexRefine):
        found: tuple[np.ndarray, np.ndarray] = index.search(queries, k)
        return found
    k_factor = max(1, round(index.k_factor))
    _, rows = index.base_index.search(queries, k * k_factor)
    out_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
    out_r = np.full((len(queries), k), -1, dtype=np.int64)
    for qi, row in enumerate(rows):
        row = row[row >= 0]
        scores = refined_scores(index.refine_index, row, queries[qi])
        best = np.lexsort((row, -scores))[:k]
        out_s[qi, : len(best)], out_r[qi, : len(best)] = scores[best], row[best]
    return out_s, out_r


def refined_scores(codes: Any, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Inner products of ``query`` with the vectors of ``rows`` as decoded from the
    re-ranking index's 8-bit codes; summed in float64, so the float32 result does not
    depend on how many rows are scored at once (a shard scores fewer)."""
    if len(rows) == 0:
        return np.zeros(0, dtype=np.float32)
    decoded = codes.reconstruct_batch(np.ascontiguousarray(rows, dtype=np.int64))
    return (decoded.astype(np.float64) @ query.astype(np.float64)).astype(np.float32)


def recall_at_10(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each exact top-10 (rows of ``truth``) present in ``found``."""
    hits = [
        len(set(f[f >= 0].tolist()) & set(t[:10].tolist())) / 10
        for f, t in zip(found, truth, strict=True)
    ]
    return float(np.mean(hits)) if hits else 1.0


def held_out(vectors: np.ndarray, count: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Query rows (a sample of ``vectors``), their ids, and each one's exact top-10 among
    the other vectors."""
    import faiss

    rng = np.random.default_rng(1)
    ids = rng.choice(len(vectors), min(count, len(vectors)), replace=False)
    queries = np.ascontiguousarray(vectors[ids], dtype=np.float32)
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(np.ascontiguousarray(vectors, dtype=np.float32))
    _, found = exact.search(queries, 11)
    return queries, ids, _without_self(found, ids)


def tune(index: Any, plan: IndexPlan, vectors: np.ndarray, target: float) -> IndexPlan:
    """The smallest ``efSearch``/``nprobe`` whose held-out recall@10 reaches ``target``
    (the largest tried when none does; its recall says so)."""
    plan.target_recall = target
    if plan.kind == "flat" or len(vectors) <= 11:
        plan.recall_at_10 = 1.0
        return plan
    queries, ids, truth = held_out(vectors)
    name = "efSearch" if plan.kind == "hnsw" else "nprobe"
    steps: tuple[int, ...] = EF_STEPS if plan.kind == "hnsw" else NPROBE_STEPS
    if plan.kind == "ivfpq":
        import faiss

        nlist = faiss.extract_index_ivf(index).nlist
        steps = tuple(s for s in steps if s <= nlist) or (nlist,)
    for value in steps:
        plan.params = {name: value, **({"k_factor_rf": REFINE_K} if plan.kind == "ivfpq" else {})}
        apply(index, plan)
        _, found = search(index, queries, 11)
        plan.recall_at_10 = recall_at_10(_without_self(found, ids), truth)
        if plan.recall_at_10 >= target:
            break
    return plan


def bytes_per_vector(index: Any) -> float:
    import faiss

    n = max(index.ntotal, 1)
    return float(len(faiss.serialize_index(index))) / n


def _without_self(found: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return np.stack([row[row != i][:10] for row, i in zip(found, ids, strict=True)])
