"""The retriever: live collections searched per query.

A collection either names files (``paths``: it is built, or brought up to date with
only its changed files embedded, when the retriever starts) or was built with
``mixserve index build`` and is only read. Either way it follows new versions as they
are published, without a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from retrieval.build import IngestOptions, ingest
from retrieval.collection import Hit, LiveCollection
from retrieval.embed import Embedder
from retrieval.store import CollectionError, CollectionStore

logger = logging.getLogger(__name__)
WORDS_RELEVANT = 0.6  # the IDF-weighted share of the query's words that makes a hit relevant


@dataclass(frozen=True)
class CollectionSpec:
    name: str
    paths: list[Path] = field(default_factory=list)  # empty: built by `mixserve index`
    root: Path = Path(".")
    options: IngestOptions = field(default_factory=IngestOptions)


class Retriever:
    def __init__(
        self,
        embedder: Embedder,
        collections: Sequence[CollectionSpec],
        data_dir: Path,
        hybrid: bool = True,
    ) -> None:
        self.embedder = embedder
        self.hybrid = hybrid
        self.specs = list(collections)
        self.data_dir = data_dir
        self.collections: dict[str, LiveCollection] = {}

    def start(self) -> None:
        self.embedder.load()
        for spec in self.specs:
            store = CollectionStore(self.data_dir, spec.name)
            if spec.paths:
                try:
                    report = ingest(
                        store,
                        self.embedder,
                        spec.paths,
                        spec.root,
                        "build",
                        spec.options,
                        wait=True,
                    )
                    logger.info(
                        "collection %s: version %s, %d chunks (%d embedded now), %d skipped",
                        spec.name, report.version, report.chunks, report.embedded,
                        len(report.skipped),
                    )  # fmt: skip
                except CollectionError as exc:
                    if not store.exists():
                        raise
                    logger.error(
                        "collection %s not rebuilt (%s): serving what it has", spec.name, exc
                    )
            live = LiveCollection(store, self.embedder.identity())
            live.open(verify=not spec.paths)  # ingest just checked (or wrote) it
            self.collections[spec.name] = live

    def sizes(self) -> dict[str, int]:
        return {n: c.current.size if c.current else 0 for n, c in self.collections.items()}

    def search(
        self,
        queries: list[str],
        k: int,
        min_score: float = -1.0,
        collections: Sequence[str] | None = None,
    ) -> list[list[Hit]]:
        """Top ``k`` hits across ``collections`` (all when None) per query, best first."""
        names = list(self.collections) if collections is None else list(collections)
        unknown = [n for n in names if n not in self.collections]
        if unknown:
            raise KeyError(f"unknown collection {unknown[0]!r}")
        if not queries or not names:
            return [[] for _ in queries]
        vectors = self.embedder.embed(queries)
        merged: list[list[tuple[int, float, Hit]]] = [[] for _ in queries]
        for name in names:
            found = self.collections[name].search(vectors, k, queries if self.hybrid else None)
            for qi, hits in enumerate(found):
                merged[qi] += [(rank, -h.score, h) for rank, h in enumerate(hits)]
        # each collection's own order (a hybrid order is not the cosine's), collections
        # interleaved rank by rank, the closer first at each rank
        return [
            [h for _, _, h in sorted(m, key=lambda x: x[:2]) if relevant(h, min_score)][:k]
            for m in merged
        ]


def relevant(hit: Hit, min_score: float) -> bool:
    """At least ``min_score`` cosine similarity, or (hybrid search) most of the query's
    words by weight: a fact one sentence long in a long chunk moves its vector little,
    though its rare words are all there."""
    return hit.score >= min_score or hit.words >= WORDS_RELEVANT
