"""The retrieval package's parts, made from mixserve's config: the embedder, and each
collection's build options (for the retriever deployment and ``mixserve index``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.config import CollectionConfig, EmbeddingConfig, MixserveConfig

if TYPE_CHECKING:
    from retrieval import CollectionSpec, Embedder, IngestOptions


def make_embedder(
    config: EmbeddingConfig, cache_dir: Path, workers: int = 0, threads: int = 0
) -> Embedder:
    """The configured encoder, in this process, or on ``workers`` Ray actors; ``threads``
    of its int8 runtime (0: its own choice, every core, for ingest's batches)."""
    from retrieval import Embedder

    if workers:
        from retrieval.cluster_embed import ClusterEmbedder

        return ClusterEmbedder(
            config.package, config.precision, config.max_tokens, cache_dir, workers
        )
    return Embedder(config.package, config.precision, config.max_tokens, cache_dir, threads)


def ingest_options(collection: CollectionConfig | None) -> IngestOptions:
    from retrieval import IngestOptions

    if collection is None:
        return IngestOptions()
    return IngestOptions(
        chunk_chars=collection.chunk_chars,
        chunk_overlap=collection.chunk_overlap,
        index=collection.index,
        target_recall=collection.target_recall,
    )


def collection_specs(config: MixserveConfig) -> list[CollectionSpec]:
    """One spec per configured collection; sources named relative to the common folder
    of its paths (a collection without paths is read as ``mixserve index`` built it)."""
    from retrieval import CollectionSpec

    specs = []
    for c in config.retrieval.collections:
        paths = [config.resolve(p).resolve() for p in c.paths]
        root = (
            Path(os.path.commonpath([p if p.is_dir() else p.parent for p in paths]))
            if paths
            else Path(config.base_dir)
        )
        specs.append(
            CollectionSpec(
                c.name, paths, root, ingest_options(c), c.shards, c.shard_resources.ray_options()
            )
        )
    return specs
