"""The retriever: live collections searched per query.

A collection either names files (``paths``: it is built, or brought up to date with
only its changed files embedded, when the retriever starts) or was built with
``mixserve index build`` and is only read. Either way it follows new versions as they
are published, without a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from retrieval.build import IngestOptions, ingest
from retrieval.collection import Hit, LiveCollection
from retrieval.embed import Embedder
from retrieval.store import CollectionError, CollectionStore

logger = logging.getLogger(__name__)
WORDS_RELEVANT = 0.6  # the IDF-weighted share of the query's words that makes a hit relevant
T = TypeVar("T")


@dataclass(frozen=True)
class CollectionSpec:
    name: str
    paths: list[Path] = field(default_factory=list)  # empty: built by `mixserve index`
    root: Path = Path(".")
    options: IngestOptions = field(default_factory=IngestOptions)
    shards: int = 1  # above 1: the index split over that many Ray actors (``shards``)
    shard_options: dict[str, object] = field(default_factory=dict)  # their Ray actor options


class Retriever:
    def __init__(
        self,
        embedder: Embedder,
        collections: Sequence[CollectionSpec],
        data_dir: Path,
        hybrid: bool = True,
        follow_in_background: bool = False,
    ) -> None:
        self.embedder = embedder
        self.hybrid = hybrid
        self.background = follow_in_background  # open new versions off the search path
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
            live = LiveCollection(
                store,
                self.embedder.identity(),
                shards=spec.shards,
                shard_options=spec.shard_options,
                background=self.background,
            )
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
        found = [
            self.collections[name].search(vectors, k, queries if self.hybrid else None)
            for name in names
        ]
        return [
            interleave([[h for h in per[qi] if relevant(h, min_score)] for per in found], k)
            for qi in range(len(queries))
        ]


def interleave(
    ranked: Sequence[Sequence[T]], k: int, score: Callable[[T], float] | None = None
) -> list[T]:
    """The best ``k`` of several collections' hits, each list in its collection's own
    order (a hybrid order is not the cosine's): interleaved rank by rank, the higher
    ``score`` (default: ``.score``) first at each rank, then the earlier list."""
    key = score or (lambda h: float(h.score))  # type: ignore[attr-defined]
    merged = [(rank, -key(h), i, h) for i, hits in enumerate(ranked) for rank, h in enumerate(hits)]
    return [h for *_, h in sorted(merged, key=lambda x: x[:3])][:k]


def relevant(hit: Hit, min_score: float) -> bool:
    """At least ``min_score`` cosine similarity, or (hybrid search) most of the query's
    words by weight: a fact one sentence long in a long chunk moves its vector little,
    though its rare words are all there."""
    return hit.score >= min_score or hit.words >= WORDS_RELEVANT
