"""Embeddings of score-table queries, computed in length-sorted batches and cached on disk.

The cache key is the backbone fingerprint plus the exact list of queries, so a cached
file can only be reused by the same weights, layer, truncation and precision. Files are
written atomically; an unreadable or mis-shaped one is recomputed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)
Embed = Callable[[list[str]], np.ndarray]


def _key(fingerprint: str, queries: list[str]) -> str:
    digest = hashlib.sha256(fingerprint.encode())
    for query in queries:
        digest.update(hashlib.sha256(query.encode()).digest())
    return digest.hexdigest()


def embed_all(
    embed: Embed,
    queries: list[str],
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Embed in batches of similar length (less padding); rows come back in input order."""
    order = np.argsort([len(q) for q in queries], kind="stable")
    rows: np.ndarray | None = None
    for start in range(0, len(queries), batch_size):
        idx = order[start : start + batch_size]
        vectors = embed([queries[i] for i in idx])
        if rows is None:
            rows = np.zeros((len(queries), vectors.shape[1]), dtype=np.float32)
        rows[idx] = vectors
        if progress is not None:
            progress(len(idx))
    return rows if rows is not None else np.zeros((0, 0), dtype=np.float32)


def cached_embeddings(
    embed: Embed,
    fingerprint: str,
    queries: list[str],
    cache_dir: Path,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    path = cache_dir / f"{_key(fingerprint, queries)}.npy"
    if path.is_file():
        try:
            rows = np.load(path, allow_pickle=False)
            if rows.ndim == 2 and len(rows) == len(queries):
                if progress is not None:
                    progress(len(queries))
                return rows.astype(np.float32)
        except (OSError, ValueError) as exc:
            logger.warning("recomputing unreadable embedding cache %s (%s)", path, exc)
    # stored as float16; round now so a fresh run and a cached one give identical rows
    rows = embed_all(embed, queries, progress=progress).astype(np.float16).astype(np.float32)
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.save(handle, rows.astype(np.float16))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return rows
