"""A collection opened for search, following its live version.

``LiveCollection.search`` looks at ``CURRENT`` at most every ``check_every_s`` seconds;
when a new version is live it opens it beside the one serving, checks it, and swaps the
two in one assignment: searches already running finish on the old one, the next ones
use the new one, none fails. A new version that does not open (corrupt, another
embedding model) is logged and the old one goes on serving.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from retrieval import indexes
from retrieval.build import check_embedding
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


class OpenVersion:
    """One version: its index in memory, its chunks read from SQLite per hit."""

    def __init__(self, collection: str, stored: StoredVersion) -> None:
        self.collection = collection
        self.name = stored.name
        self.manifest = stored.manifest
        self.index = stored.read_index()
        self.plan = indexes.IndexPlan(
            stored.manifest["index"]["kind"],
            stored.manifest["index"]["factory"],
            dict(stored.manifest["index"].get("params") or {}),
        )
        indexes.apply(self.index, self.plan)
        if self.index.ntotal != stored.manifest["counts"]["chunks"]:
            raise CollectionError(f"{stored.folder}: index and chunk counts differ")
        self.db = stored.connect()
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    def search(self, vectors: np.ndarray, k: int) -> list[list[Hit]]:
        k = min(k, self.size)
        scores, rows = indexes.search(self.index, vectors, k)
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
                )
                for s, r in zip(row_s, row_r, strict=True)
                if r >= 0 and int(r) in found
            ]
            for row_s, row_r in zip(scores, rows, strict=True)
        ]


class LiveCollection:
    def __init__(
        self, store: CollectionStore, embedding: dict[str, Any], check_every_s: float = 1.0
    ) -> None:
        self.store = store
        self.embedding = embedding
        self.check_every_s = check_every_s
        self.current: OpenVersion | None = None
        self._checked = 0.0
        self._refresh_lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.store.name

    def open(self) -> OpenVersion:
        """The live version, opened now (raises ``CollectionError`` if it cannot be)."""
        stored = self.store.open_version()
        check_embedding(stored.manifest, self.embedding, self.store.name)
        self.current = OpenVersion(self.store.name, stored)
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
                opened = OpenVersion(self.store.name, stored)
            except (CollectionError, RuntimeError, OSError) as exc:
                logger.error("collection %s: version %s not served: %s", self.name, live, exc)
                return False
            self.current = opened
            logger.info("collection %s: serving version %s", self.name, opened.name)
            return True
        finally:
            self._refresh_lock.release()

    def search(self, vectors: np.ndarray, k: int) -> list[list[Hit]]:
        if time.monotonic() - self._checked >= self.check_every_s:
            self.refresh()
        version = self.current or self.open()
        return version.search(vectors, k)
