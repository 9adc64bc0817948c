"""A FAISS inner-product index over passages, saved atomically with a checksum.

On disk a collection is a folder with ``index.faiss``, ``passages.json`` and
``manifest.json`` (content fingerprint, sizes and sha256 of both files). ``load`` checks
the checksums and raises ``CorruptIndexError`` instead of serving from a damaged file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.chunking import Passage

Embed = Callable[[list[str]], np.ndarray]


class CorruptIndexError(RuntimeError):
    """An index folder whose files do not match their manifest."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fingerprint(passages: list[Passage], embedder_id: str) -> str:
    digest = hashlib.sha256(embedder_id.encode())
    for p in passages:
        digest.update(p.id.encode() + b"\0" + p.text.encode() + b"\0")
    return digest.hexdigest()


class PassageIndex:
    def __init__(self, index: Any, passages: list[Passage], fp: str) -> None:
        self.index = index
        self.passages = passages
        self.fingerprint = fp

    @classmethod
    def build(cls, passages: list[Passage], embed: Embed, fp: str) -> PassageIndex:
        import faiss

        if not passages:
            raise ValueError("no passages to index")
        vectors = embed([p.text for p in passages])
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
        return cls(index, passages, fp)

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[Passage, float]]]:
        k = min(k, len(self.passages))
        scores, ids = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return [
            [(self.passages[i], float(s)) for s, i in zip(row_s, row_i, strict=True) if i >= 0]
            for row_s, row_i in zip(scores, ids, strict=True)
        ]

    def save(self, folder: Path) -> None:
        import faiss

        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            faiss.write_index(self.index, str(tmp / "index.faiss"))
            (tmp / "passages.json").write_text(json.dumps([asdict(p) for p in self.passages]))
            manifest = {
                "fingerprint": self.fingerprint,
                "count": len(self.passages),
                "sha256": {n: _sha256(tmp / n) for n in ("index.faiss", "passages.json")},
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    @classmethod
    def load(cls, folder: Path) -> PassageIndex:
        import faiss

        try:
            manifest = json.loads((folder / "manifest.json").read_text())
            for name, expected in manifest["sha256"].items():
                if _sha256(folder / name) != expected:
                    raise CorruptIndexError(f"{folder / name} does not match its checksum")
            raw = json.loads((folder / "passages.json").read_text())
            passages = [Passage(**p) for p in raw]
            index = faiss.read_index(str(folder / "index.faiss"))
        except CorruptIndexError:
            raise
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise CorruptIndexError(f"index at {folder} is unreadable: {exc}") from exc
        if index.ntotal != len(passages) or manifest.get("count") != len(passages):
            raise CorruptIndexError(f"index at {folder} has mismatched sizes")
        return cls(index, passages, str(manifest["fingerprint"]))
