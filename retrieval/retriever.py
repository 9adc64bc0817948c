"""The retriever: one FAISS index per collection, built or loaded at start, searched per query."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from retrieval.chunking import chunk_files, collect_files
from retrieval.embed import SentenceEmbedder
from retrieval.index import CorruptIndexError, PassageIndex, fingerprint

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CollectionSpec:
    name: str
    paths: list[Path]
    root: Path
    chunk_chars: int = 800
    chunk_overlap: int = 100


@dataclass(frozen=True)
class Hit:
    id: str
    collection: str
    source: str
    score: float
    text: str

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "collection": self.collection,
            "source": self.source,
            "score": round(self.score, 4),
            "text": self.text,
        }


class Retriever:
    def __init__(
        self, embedder: SentenceEmbedder, collections: list[CollectionSpec], index_dir: Path
    ) -> None:
        self.embedder = embedder
        self.collections = collections
        self.index_dir = index_dir
        self.indexes: dict[str, PassageIndex] = {}

    def start(self) -> None:
        self.embedder.load()
        for spec in self.collections:
            self.indexes[spec.name] = self._open(spec)

    def _open(self, spec: CollectionSpec) -> PassageIndex:
        passages = chunk_files(
            collect_files(spec.paths), spec.root, spec.chunk_chars, spec.chunk_overlap
        )
        fp = fingerprint(passages, self.embedder.package)
        folder = self.index_dir / spec.name
        if (folder / "manifest.json").exists():
            try:
                index = PassageIndex.load(folder)
                if index.fingerprint == fp:
                    return index
                logger.info("collection %s changed; rebuilding its index", spec.name)
            except CorruptIndexError as exc:
                logger.warning("rebuilding collection %s: %s", spec.name, exc)
        index = PassageIndex.build(passages, self.embedder.embed, fp)
        index.save(folder)
        return index

    def search(self, queries: list[str], k: int, min_score: float) -> list[list[Hit]]:
        """Top ``k`` passages across collections for each query, best first."""
        if not queries or not self.indexes:
            return [[] for _ in queries]
        vectors = self.embedder.embed(queries)
        merged: list[list[Hit]] = [[] for _ in queries]
        for name, index in self.indexes.items():
            for qi, hits in enumerate(index.search(vectors, k)):
                merged[qi] += [
                    Hit(p.id, name, p.source, s, p.text) for p, s in hits if s >= min_score
                ]
        return [sorted(h, key=lambda x: -x.score)[:k] for h in merged]
