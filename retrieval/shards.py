"""A collection's vectors split across shards (Ray actors, on several nodes), searched by
fanning a query out and merging: the merged top-k is the unsharded index's top-k.

Why it is the same, by index kind:
- ``flat``: each shard's top-k is exact over its part; the best k of their union is the
  exact top-k of the whole.
- ``ivfpq``: every shard is a copy of the collection's one *trained* index (the same
  coarse centroids, PQ and 8-bit codebooks) holding its part: its rows' codes copied
  out of the whole index, not encoded again. A query probes the same
  lists everywhere, and each shard returns its best ``k_factor·k`` candidates by PQ score
  together with their 8-bit (re-ranking) scores. The coordinator keeps the best
  ``k_factor·k`` by PQ score, exactly the candidates the unsharded index would re-rank,
  and orders them by the re-ranking score, computed as ``indexes.search`` computes it.
- ``hnsw`` graphs do not split that way: a sharded HNSW would return other results, so
  it is refused.

Rows go to shards round-robin (row ``i`` to shard ``i % shards``); hits carry global row
numbers. Ties in score are broken by row number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from retrieval import indexes

SHARDABLE = ("flat", "ivfpq")  # the kinds whose shards give the unsharded results


def parts(index: Any, plan: indexes.IndexPlan, shards: int) -> Iterator[tuple[bytes, np.ndarray]]:
    """Each shard's index (serialized) and its rows (``split``): the rows' data copied
    out of the collection's index as it is, never re-encoded, so a shard scores each row
    exactly as the whole index does. ``flat``: the rows' vectors; ``ivfpq``: the trained
    index with the rows' entries of its inverted lists (PQ codes under their global row
    ids) and their 8-bit re-ranking codes. One shard is made at a time."""
    import faiss

    if plan.kind not in SHARDABLE:
        raise ValueError(f"a {plan.kind} index cannot be sharded with identical results")
    whole: Any = faiss.downcast_index(index)
    empty: Any = None
    if plan.kind == "ivfpq":  # the trained index without its rows, emptied once
        empty = faiss.clone_index(whole)
        empty.reset()
    for shard, rows in enumerate(split(int(whole.ntotal), shards)):
        if plan.kind == "flat":
            part: Any = faiss.IndexFlatIP(whole.d)
            part.add(whole.reconstruct_batch(rows))
            yield bytes(faiss.serialize_index(part)), rows
            continue
        cloned = faiss.clone_index(empty)  # held: the downcast view does not own it
        part = faiss.downcast_index(cloned)
        base: Any = faiss.downcast_index(part.base_index)
        lists: Any = faiss.InvertedLists
        source: Any = faiss.downcast_index(whole.base_index)
        source.copy_subset_to(base, lists.SUBSET_TYPE_ID_MOD, shards, shard)  # id % shards
        codes: Any = faiss.downcast_index(whole.refine_index)
        mine: Any = faiss.downcast_index(part.refine_index)
        table = faiss.rev_swig_ptr(codes.codes.data(), codes.ntotal * codes.code_size)
        picked = np.frombuffer(table, dtype=np.uint8).reshape(-1, codes.code_size)[rows]
        faiss.copy_array_to_vector(np.ascontiguousarray(picked).ravel(), mine.codes)
        mine.ntotal = part.ntotal = len(rows)
        if base.ntotal != len(rows):
            raise ValueError(f"shard {shard}: {base.ntotal} list entries for {len(rows)} rows")
        yield bytes(faiss.serialize_index(part)), rows


class ShardSearcher:
    """One shard: its rows of the collection (``parts``)."""

    def __init__(self, data: bytes, plan: dict[str, Any], rows: np.ndarray) -> None:
        import faiss

        self.plan = indexes.IndexPlan(plan["kind"], plan["factory"], dict(plan["params"]))
        self.index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        self.rows = np.asarray(rows, dtype=np.int64)  # ascending
        self.k_factor = 1
        if self.plan.kind == "ivfpq":
            refine: Any = faiss.downcast_index(self.index)
            base: Any = faiss.downcast_index(refine.base_index)
            base.nprobe = int(self.plan.params.get("nprobe", 1))
            self.base, self.refine = base, refine.refine_index
            self.k_factor = int(self.plan.params.get("k_factor_rf", 1))

    def size(self) -> int:
        return int(self.index.ntotal)

    def node_id(self) -> str:
        """The Ray node this shard runs on (as a Ray actor)."""
        import ray

        return str(ray.get_runtime_context().get_node_id())

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(primary scores, final scores, global rows), best first by primary score; the
        primary score is what candidates are chosen by, the final what they are ordered
        by (the same for ``flat``)."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self.plan.kind == "flat":
            scores, local = indexes.search(self.index, queries, k)
            return scores, scores, np.where(local >= 0, self.rows[np.maximum(local, 0)], -1)
        primary, found = self.base.search(queries, k * self.k_factor)  # global row ids
        final = np.full(primary.shape, -np.inf, dtype=np.float32)
        for qi, row in enumerate(found):
            ok = row >= 0
            local = np.searchsorted(self.rows, row[ok])
            final[qi, ok] = indexes.refined_scores(self.refine, local, queries[qi])
        return primary, final, found


def merge(
    parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], k: int, k_base: int
) -> tuple[np.ndarray, np.ndarray]:
    """The shards' answers as one: per query, the best ``k_base`` candidates by primary
    score, then the best ``k`` of those by final score. (scores, rows)."""
    primary = np.concatenate([p[0] for p in parts], axis=1)
    final = np.concatenate([p[1] for p in parts], axis=1)
    rows = np.concatenate([p[2] for p in parts], axis=1)
    out_s = np.full((len(rows), k), -np.inf, dtype=np.float32)
    out_r = np.full((len(rows), k), -1, dtype=np.int64)
    for qi in range(len(rows)):
        ok = rows[qi] >= 0
        p, f, r = primary[qi][ok], final[qi][ok], rows[qi][ok]
        keep = np.lexsort((r, -p))[:k_base]
        p, f, r = p[keep], f[keep], r[keep]
        best = np.lexsort((r, -f))[:k]
        out_s[qi, : len(best)], out_r[qi, : len(best)] = f[best], r[best]
    return out_s, out_r


def split(count: int, shards: int) -> list[np.ndarray]:
    if not 1 <= shards <= max(count, 1):
        raise ValueError(f"{shards} shards for {count} vectors")
    return [np.arange(s, count, shards, dtype=np.int64) for s in range(shards)]


class ShardedSearch:
    """Fan out to shards and merge. ``shards`` are ``ShardSearcher`` objects or Ray actor
    handles of them (``remote=True``); ``restart(i)`` makes shard ``i`` again (a new
    actor from its data) when its actor is lost."""

    def __init__(
        self,
        shards: Sequence[Any],
        plan: indexes.IndexPlan,
        remote: bool,
        restart: Callable[[int], Any] | None = None,
    ) -> None:
        self.shards = list(shards)
        self.plan = plan
        self.remote = remote
        self.restart = restart
        self.restarts = 0

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k_base = k * int(self.plan.params.get("k_factor_rf", 1)) if self.plan.kind == "ivfpq" else k
        if not self.remote:
            return merge([s.search(queries, k) for s in self.shards], k, k_base)
        import ray

        pending = [s.search.remote(queries, k) for s in self.shards]
        parts = []
        for i, ref in enumerate(pending):
            try:
                parts.append(ray.get(ref))
            except ray.exceptions.RayActorError:
                if self.restart is None:
                    raise
                # its process or node is gone: a new actor from the shard's data, asked again
                self.shards[i] = self.restart(i)
                self.restarts += 1
                parts.append(ray.get(self.shards[i].search.remote(queries, k)))
        return merge(parts, k, k_base)

    def nodes(self) -> list[str]:
        """The node each shard runs on."""
        if not self.remote:
            return ["" for _ in self.shards]
        import ray

        return [str(n) for n in ray.get([s.node_id.remote() for s in self.shards])]


def start_shards(
    index: Any,
    plan: indexes.IndexPlan,
    shards: int,
    num_cpus: float = 0.5,
    spread: bool = True,
    **ray_options: Any,
) -> ShardedSearch:
    """Ray actors, one per shard (spread over the cluster's nodes), holding the
    collection's rows (``parts``), which travel through Ray's object store. A shard whose
    process or node is lost is made again from its data, which the returned object holds
    (Ray's own actor restarts cannot be relied on for arguments in the object store:
    ray-project/ray#53727), and the search asked again; the actors stop when the returned
    object is dropped. ``ray_options``: more Ray actor options (``memory``,
    ``resources``)."""
    import ray

    actor: Any = ray.remote(ShardSearcher).options(
        num_cpus=num_cpus, scheduling_strategy="SPREAD" if spread else "DEFAULT", **ray_options
    )
    held = [(ray.put(data), rows) for data, rows in parts(index, plan, shards)]
    settings = plan.as_dict()

    def make(i: int) -> Any:
        return actor.remote(held[i][0], settings, held[i][1])

    handles = [make(i) for i in range(len(held))]
    ray.get([h.__ray_ready__.remote() for h in handles])
    return ShardedSearch(handles, plan, remote=True, restart=make)
