"""Embedding spread over a Ray cluster: one worker actor per slot (``SPREAD`` over the
nodes), each holding its own copy of the encoder, and batches of chunks dealt to them.
``ClusterEmbedder`` is an ``Embedder`` whose ``embed`` runs there, so ``ingest`` takes it
as it is: the same identity, the same vectors (up to int8 rounding: dynamic quantization
scales with each batch's activations), up to ``workers`` times the throughput on
``workers`` machines.

The caller connects to Ray (``ray.init``) before ``load``; ``close`` stops the workers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from retrieval.embed import Embedder, Precision


class EmbedWorker:
    """One encoder in one Ray actor."""

    def __init__(
        self, package: str, precision: Precision, max_tokens: int, cache_dir: str, threads: int
    ) -> None:
        self.embedder = Embedder(package, precision, max_tokens, Path(cache_dir), threads)
        self.embedder.load()
        self.count = 0

    def embed(self, texts: list[str], batch_size: int) -> np.ndarray:
        self.count += len(texts)
        return self.embedder.embed(texts, batch_size)

    def stats(self) -> dict[str, Any]:
        """The node it runs on and how many texts it embedded."""
        import ray

        return {"node": ray.get_runtime_context().get_node_id(), "texts": self.count}


class ClusterEmbedder(Embedder):
    """The model of ``Embedder(package, precision, max_tokens, cache_dir)`` on ``workers``
    Ray actors; loaded here too, for its identity, dimension and tokenizer."""

    def __init__(
        self,
        package: str,
        precision: Precision = "int8",
        max_tokens: int = 256,
        cache_dir: Path | None = None,
        workers: int = 2,
        num_cpus: float = 1.0,
    ) -> None:
        super().__init__(package, precision, max_tokens, cache_dir)
        if workers < 1:
            raise ValueError(f"{workers} embedding workers")
        self.parallel = workers
        self.num_cpus = num_cpus
        self.workers: list[Any] = []

    def load(self) -> None:
        import ray

        super().load()
        actor: Any = ray.remote(EmbedWorker).options(
            num_cpus=self.num_cpus, scheduling_strategy="SPREAD"
        )
        threads = max(1, int(self.num_cpus))  # workers sharing a node do not oversubscribe it
        args = (self.package, self.precision, self.max_tokens, str(self.cache_dir), threads)
        self.workers = [actor.remote(*args) for _ in range(self.parallel)]
        ray.get([w.__ray_ready__.remote() for w in self.workers])

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """The texts' vectors, in order: consecutive batches (smaller than ``batch_size``
        when there are too few texts to give every worker one) dealt to the workers in
        turn, all in flight at once."""
        import ray

        if not self.workers:
            raise RuntimeError("embedder not loaded")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        size = min(batch_size, -(-len(texts) // len(self.workers)))  # every worker a share
        parts = [texts[i : i + size] for i in range(0, len(texts), size)]
        pending = [
            self.workers[i % len(self.workers)].embed.remote(part, batch_size)
            for i, part in enumerate(parts)
        ]
        return np.concatenate(ray.get(pending)).astype(np.float32)

    def stats(self) -> list[dict[str, Any]]:
        """Each worker's node and how many texts it embedded."""
        import ray

        return list(ray.get([w.stats.remote() for w in self.workers]))

    def close(self) -> None:
        import ray

        for w in self.workers:
            ray.kill(w)
        self.workers = []
