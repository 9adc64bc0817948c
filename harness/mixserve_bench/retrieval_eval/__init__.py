"""Measurements of retrieval against its targets, on real documentation: ingest speed and
embedding fidelity, search at scale, grounding of planted facts, and sharded search.
``mixserve bench retrieval`` runs them all; ``benchmarks/retrieval_*.py`` one each."""

from mixserve_bench.retrieval_eval.corpus import Corpus, debian_corpus, folder_corpus, real_vectors
from mixserve_bench.retrieval_eval.grounding import grounding
from mixserve_bench.retrieval_eval.ingest import ingest_speed
from mixserve_bench.retrieval_eval.scale import scale, summary

__all__ = [
    "Corpus",
    "debian_corpus",
    "folder_corpus",
    "grounding",
    "ingest_speed",
    "real_vectors",
    "scale",
    "summary",
]
