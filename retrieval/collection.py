"""A collection opened for search, following its live version.

``LiveCollection.search`` looks at ``CURRENT`` at most every ``check_every_s`` seconds;
when a new version is live it opens it beside the one serving, checks it, and swaps the
two in one assignment: searches already running finish on the old one, the next ones
use the new one, none fails. A new version that does not open (corrupt, another
embedding model) is logged and the old one goes on serving. With ``background=True``
(the service) the new version is opened on a thread of its own, so no search waits for
a large index to load or its shards to start.

A version opened with ``shards`` above 1 splits its index over that many Ray actors
(``retrieval.shards``, spread over the cluster's nodes) and drops its own copy: this
process keeps the chunks (SQLite) and the memory-mapped vectors that hybrid scores are
computed from, the shards the index. Results are the unsharded index's.
"""

from __future__ import annotations

import logging
import math
import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from retrieval import indexes
from retrieval.build import check_embedding
from retrieval.shards import SHARDABLE, ShardedSearch, start_shards
from retrieval.store import CollectionError, CollectionStore, StoredVersion

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hit:
    id: str
    collection: str
    source: str
    offset: int
    heading: str
    score: float
    text: str
    # the IDF-weighted share of the query's rare words in the chunk (hybrid search; 0 else)
    words: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "collection": self.collection,
            "source": self.source,
            "offset": self.offset,
            "heading": self.heading,
            "score": round(self.score, 4),
            "text": self.text,
        }


CANDIDATES = 4  # each half of a hybrid search proposes this many times k
# the word half's share of a hybrid score. The harness's grounding evaluation
# (``harness/mixserve_bench/retrieval_eval/grounding.py``) checks it on a tuning set of
# its own: 0.97 top-5 from 0.5 to 0.8, 0.98 with words alone (1.0), whose questions
# reuse their facts' words; an even mix keeps the vectors' half for questions worded
# otherwise
LEXICAL_WEIGHT = 0.5
RARE_SHARE = 0.1  # a query word in more of the chunks than this does not count as evidence
_WORD = re.compile(r"\w{2,}", re.UNICODE)


class OpenVersion:
    """One version: its index in memory, its chunks read from SQLite per hit.

    Hybrid search (the default when the query's text is given): the index's nearest
    chunks and SQLite FTS5's best BM25 matches of the query's words (each proposes
    ``CANDIDATES``·k) are ranked together by a convex combination of the two scores,
    each scaled to [0, 1] over the candidates (Bruch et al. 2023 found it beats
    reciprocal rank fusion, which ignores how far apart the scores are). A hit's
    ``score`` is always its cosine similarity to the query, computed from the stored
    vectors, so ``min_score`` means the same for every hit. Words find what embeddings
    blur: names, numbers, rare terms in a long chunk."""

    def __init__(
        self,
        collection: str,
        stored: StoredVersion,
        shards: int = 1,
        shard_options: dict[str, Any] | None = None,
    ) -> None:
        self.collection = collection
        self.name = stored.name
        self.manifest = stored.manifest
        index = stored.read_index()
        self.plan = indexes.IndexPlan(
            stored.manifest["index"]["kind"],
            stored.manifest["index"]["factory"],
            dict(stored.manifest["index"].get("params") or {}),
        )
        indexes.apply(index, self.plan)
        self.size = int(index.ntotal)
        if self.size != stored.manifest["counts"]["chunks"]:
            raise CollectionError(f"{stored.folder}: index and chunk counts differ")
        self.vectors = stored.read_vectors()
        self.index: Any = index
        self.sharded: ShardedSearch | None = None
        if shards > 1:
            if self.plan.kind not in SHARDABLE:
                raise CollectionError(
                    f"{stored.folder}: a {self.plan.kind} index cannot be split into shards "
                    f"with the unsharded results; rebuild it with index flat or ivfpq"
                )
            self.sharded = start_shards(index, self.plan, shards, **(shard_options or {}))
            self.index = None  # the shards hold it now
        self.db = stored.connect()
        self._lock = threading.Lock()
        self.lexical_weight = LEXICAL_WEIGHT
        self._vocab = False  # the word counts' view, made on first use

    def shard_nodes(self) -> list[str]:
        """The Ray node of each shard (empty when not sharded)."""
        return self.sharded.nodes() if self.sharded is not None else []

    def _nearest(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.sharded is not None:
            return self.sharded.search(np.ascontiguousarray(vectors, dtype=np.float32), k)
        return indexes.search(self.index, vectors, k)

    def search(
        self, vectors: np.ndarray, k: int, texts: list[str] | None = None
    ) -> list[list[Hit]]:
        k = min(k, self.size)
        if texts is None:
            scores, rows = self._nearest(vectors, k)
        else:
            scores, rows = self._hybrid(vectors, texts, k)
        return self._hits(scores, rows, texts)

    def _hybrid(
        self, vectors: np.ndarray, texts: list[str], k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        wide = min(k * CANDIDATES, self.size)
        _, dense = self._nearest(vectors, wide)
        scores = np.full((len(texts), k), -np.inf, dtype=np.float32)
        rows = np.full((len(texts), k), -1, dtype=np.int64)
        for qi, text in enumerate(texts):
            words = self._bm25(text, wide, [int(r) for r in dense[qi] if r >= 0])
            candidates = sorted({int(r) for r in dense[qi] if r >= 0} | set(words))
            if not candidates:
                continue
            cosine = np.asarray(self.vectors[candidates], dtype=np.float32) @ vectors[qi]
            lexical = np.array([words.get(r, 0.0) for r in candidates], dtype=np.float32)
            fused = (1 - self.lexical_weight) * _unit(cosine) + self.lexical_weight * _unit(lexical)
            best = np.lexsort((np.array(candidates), -fused))[:k]
            scores[qi, : len(best)] = cosine[best]
            rows[qi, : len(best)] = np.array(candidates)[best]
        return scores, rows

    def _bm25(self, text: str, limit: int, also: list[int]) -> dict[int, float]:
        """BM25 scores (higher is better) of the ``limit`` best word matches of ``text``
        and of the rows in ``also`` that match any of its words."""
        words = _query_words(text)
        if not words:
            return {}
        match = " OR ".join('"' + w.replace('"', "") + '"' for w in words)
        marks = ",".join("?" * len(also))
        try:
            with self._lock:
                found = self.db.execute(
                    "SELECT rowid, -bm25(words) FROM words WHERE words MATCH ? "
                    "ORDER BY bm25(words) LIMIT ?",
                    (match, limit),
                ).fetchall()
                if also:
                    found += self.db.execute(
                        f"SELECT rowid, -bm25(words) FROM words WHERE words MATCH ? "
                        f"AND rowid IN ({marks})",
                        (match, *also),
                    ).fetchall()
        except sqlite3.Error as exc:  # the vectors' half still answers
            logger.warning("collection %s: word search failed (%s)", self.collection, exc)
            return {}
        return {int(r): float(score) for r, score in found}

    def _word_weights(self, text: str) -> dict[str, float]:
        """Each of the query's rare words (in at most ``RARE_SHARE`` of the chunks) and
        its BM25 inverse document frequency in this version (a word no chunk holds weighs
        the most)."""
        words = _query_words(text)
        if not words:
            return {}
        n = self.size
        try:
            with self._lock:
                if not self._vocab:
                    self.db.execute(
                        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.vocab "
                        "USING fts5vocab(main, words, row)"
                    )
                    self._vocab = True
                df = dict(
                    self.db.execute(
                        f"SELECT term, doc FROM temp.vocab WHERE term IN "
                        f"({','.join('?' * len(words))})",
                        words,
                    ).fetchall()
                )
        except sqlite3.Error as exc:
            logger.warning("collection %s: word counts failed (%s)", self.collection, exc)
            return {}
        rare = max(1.0, n * RARE_SHARE)  # common words say nothing of relevance
        return {
            w: math.log((n - df.get(w, 0) + 0.5) / (df.get(w, 0) + 0.5) + 1)
            for w in words
            if df.get(w, 0) <= rare
        }

    def _hits(
        self, scores: np.ndarray, rows: np.ndarray, texts: list[str] | None = None
    ) -> list[list[Hit]]:
        wanted = sorted({int(r) for r in rows.ravel() if r >= 0})
        with self._lock:
            found = {
                row: rest
                for row, *rest in self.db.execute(
                    f"SELECT row, id, source, offset, heading, text FROM chunks "
                    f"WHERE row IN ({','.join('?' * len(wanted))})",
                    wanted,
                )
            }
        weights = [self._word_weights(t) for t in texts] if texts else [{} for _ in rows]
        return [
            [
                Hit(
                    found[r][0],
                    self.collection,
                    found[r][1],
                    found[r][2],
                    found[r][3],
                    float(s),
                    found[r][4],
                    _coverage(weight, f"{found[r][3]} {found[r][4]}"),
                )
                for s, r in zip(row_s, row_r, strict=True)
                if r >= 0 and int(r) in found
            ]
            for row_s, row_r, weight in zip(scores, rows, weights, strict=True)
        ]


def _query_words(text: str) -> list[str]:
    return list(dict.fromkeys(w.lower() for w in _WORD.findall(text)))[:32]


def _coverage(weights: dict[str, float], text: str) -> float:
    """The share of the weights of the words ``text`` holds."""
    total = sum(weights.values())
    if not total:
        return 0.0
    present = {w.lower() for w in _WORD.findall(text)}
    return sum(v for w, v in weights.items() if w in present) / total


def _unit(values: np.ndarray) -> np.ndarray:
    """``values`` scaled to [0, 1] by their min and max (all 0 when they are equal)."""
    low, high = float(values.min()), float(values.max())
    return (values - low) / (high - low) if high > low else np.zeros_like(values)


class LiveCollection:
    def __init__(
        self,
        store: CollectionStore,
        embedding: dict[str, Any],
        check_every_s: float = 1.0,
        shards: int = 1,
        shard_options: dict[str, Any] | None = None,
        background: bool = False,
    ) -> None:
        self.store = store
        self.embedding = embedding
        self.check_every_s = check_every_s
        self.shards = shards
        self.shard_options = dict(shard_options or {})
        self.background = background
        self.current: OpenVersion | None = None
        self._checked = 0.0
        self._refresh_lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.store.name

    def open(self, verify: bool = True) -> OpenVersion:
        """The live version, opened now (raises ``CollectionError`` if it cannot be);
        ``verify=False`` skips the checksums, for a version this process just checked."""
        stored = self.store.open_version(verify=verify)
        check_embedding(stored.manifest, self.embedding, self.store.name)
        self.current = self._open(stored)
        self._checked = time.monotonic()
        return self.current

    def refresh(self) -> bool:
        """Swap to a new live version if there is one; True when it swapped."""
        if not self._refresh_lock.acquire(blocking=False):
            return False  # another thread is opening it
        try:
            self._checked = time.monotonic()
            try:
                live = self.store.current()
            except CollectionError as exc:
                logger.warning("collection %s: %s", self.name, exc)
                return False
            if self.current is not None and live == self.current.name:
                return False
            try:
                stored = self.store.open_version(live)
                check_embedding(stored.manifest, self.embedding, self.store.name)
                opened = self._open(stored)
            except (CollectionError, RuntimeError, OSError) as exc:
                logger.error("collection %s: version %s not served: %s", self.name, live, exc)
                return False
            self.current = opened
            logger.info("collection %s: serving version %s", self.name, opened.name)
            return True
        finally:
            self._refresh_lock.release()

    def _open(self, stored: StoredVersion) -> OpenVersion:
        return OpenVersion(self.store.name, stored, self.shards, self.shard_options)

    def search(
        self, vectors: np.ndarray, k: int, texts: list[str] | None = None
    ) -> list[list[Hit]]:
        """Nearest chunks; hybrid (vectors and words) when the queries' ``texts`` are given."""
        if time.monotonic() - self._checked >= self.check_every_s:
            if not self.background:
                self.refresh()
            elif not self._refresh_lock.locked():
                self._checked = time.monotonic()  # one opening thread at a time
                threading.Thread(target=self.refresh, name="refresh", daemon=True).start()
        version = self.current or self.open()
        return version.search(vectors, k, texts)
