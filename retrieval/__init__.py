"""Retrieval grounding: read documents, chunk them, embed them, keep versioned FAISS
collections on disk and search them.

Public API: ``Retriever``, ``CollectionSpec``, ``Hit``, ``Embedder``, ``IngestOptions``,
``ingest``, ``delete``, ``interleave``, ``CollectionStore``, ``CollectionError``,
``LiveCollection``.
"""

from retrieval.build import BuildReport, IngestOptions, delete, ingest
from retrieval.collection import Hit, LiveCollection
from retrieval.embed import Embedder
from retrieval.retriever import CollectionSpec, Retriever, interleave
from retrieval.store import CollectionError, CollectionStore, list_collections

__all__ = [
    "BuildReport",
    "CollectionError",
    "CollectionSpec",
    "CollectionStore",
    "Embedder",
    "Hit",
    "IngestOptions",
    "LiveCollection",
    "Retriever",
    "delete",
    "ingest",
    "interleave",
    "list_collections",
]
