"""Ingest speed and embedding fidelity.

- the encoder side by side, fp32 (sentence-transformers as shipped) and int8 (ONNX
  Runtime), in alternating rounds over the same chunks of at most ``max_tokens`` tokens:
  chunks/s of each and their ratio;
- fidelity: cosine of every int8 vector to its fp32 vector (min, 1st percentile, mean);
- the whole ``mixserve index build`` path (read + chunk, embed, index, write) on
  ``files`` of the corpus's pages, with its breakdown.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from mixserve_bench.retrieval_eval.corpus import MODEL, Corpus
from retrieval.build import IngestOptions, ingest
from retrieval.chunking import chunk_document
from retrieval.documents import Unreadable, read
from retrieval.embed import Embedder, Precision
from retrieval.store import CollectionStore


def chunks_of(files: list[Path], root: Path, want: int) -> list[str]:
    texts: list[str] = []
    for f in files:
        try:
            doc = read(f, f.relative_to(root).as_posix())
        except Unreadable:
            continue
        texts += [c.embed_text for c in chunk_document(doc, 512, 64)]
        if len(texts) >= want:
            break
    return texts[:want]


def _rate(embedder: Embedder, texts: list[str]) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    vectors = embedder.embed(texts)
    return len(texts) / (time.perf_counter() - started), vectors


def ingest_speed(
    corpus: Corpus, cache: Path, chunks: int, rounds: int, files: int, max_tokens: int = 128
) -> dict[str, Any]:
    texts = chunks_of(corpus.pages, corpus.root, chunks)
    precisions: tuple[Precision, ...] = ("fp32", "int8")
    encoders = {p: Embedder(MODEL, p, max_tokens, cache) for p in precisions}
    for e in encoders.values():
        e.load()
        e.embed(texts[:32])  # warm
    tokens = [len(t) for t in encoders["fp32"]._st.tokenizer(texts)["input_ids"]]
    rates: dict[str, list[float]] = {"fp32": [], "int8": []}
    vectors: dict[str, np.ndarray] = {}
    for r in range(rounds):
        for p in precisions if r % 2 == 0 else precisions[::-1]:
            per_s, vectors[p] = _rate(encoders[p], texts)
            rates[p].append(per_s)
    cos = np.sum(vectors["fp32"] * vectors["int8"], axis=1)
    with tempfile.TemporaryDirectory() as tmp:
        store = CollectionStore(Path(tmp), "pages")
        started = time.perf_counter()
        report = ingest(
            store, encoders["int8"], corpus.pages[:files], corpus.root, "build", IngestOptions()
        )
        total = time.perf_counter() - started
    return {
        "corpus": corpus.name,
        "chunks": len(texts),
        "max_tokens": max_tokens,
        "tokens": {
            "mean": float(np.mean(tokens)),
            "share_cut_at_max": float(np.mean(np.array(tokens) > max_tokens)),
        },
        "chunks_per_s": {p: float(np.median(v)) for p, v in rates.items()},
        "rounds": rates,
        "int8_over_fp32": float(np.median(rates["int8"]) / np.median(rates["fp32"])),
        "cosine_int8_fp32": {
            "min": float(cos.min()),
            "p1": float(np.percentile(cos, 1)),
            "mean": float(cos.mean()),
        },
        "build": {
            "files": report.files,
            "chunks": report.chunks,
            "seconds": report.seconds,
            "total_s": total,
            "chunks_per_s": report.chunks / total,
            "index": report.index,
        },
    }
