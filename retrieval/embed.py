"""Sentence embeddings from an offline model package (all-MiniLM-L6-v2 by default)."""

from __future__ import annotations

import importlib
import threading
from typing import Any

import numpy as np


class SentenceEmbedder:
    def __init__(self, package: str) -> None:
        self.package = package
        self._model: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        from sentence_transformers import SentenceTransformer

        try:
            module = importlib.import_module(self.package.replace("-", "_"))
        except ImportError as exc:
            raise RuntimeError(f"embedding package {self.package!r} is not installed") from exc
        path = module.get_model_path()
        self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)

    @property
    def dim(self) -> int:
        return int(self._model.get_sentence_embedding_dimension())

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 rows, so inner product is cosine similarity."""
        if self._model is None:
            raise RuntimeError("embedder not loaded")
        with self._lock:
            vectors = self._model.encode(
                texts,
                batch_size=32,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)
