"""Retrieval grounding: chunk documents, embed them, search a FAISS index.

Public API: ``Retriever``, ``CollectionSpec``, ``Hit``, ``SentenceEmbedder``,
``PassageIndex``, ``CorruptIndexError``, ``chunk_text``.
"""

from retrieval.chunking import chunk_text
from retrieval.embed import SentenceEmbedder
from retrieval.index import CorruptIndexError, PassageIndex
from retrieval.retriever import CollectionSpec, Hit, Retriever

__all__ = [
    "CollectionSpec",
    "CorruptIndexError",
    "Hit",
    "PassageIndex",
    "Retriever",
    "SentenceEmbedder",
    "chunk_text",
]
