"""Build, add to and delete from a collection, each as one new version.

Every write reads the live version (if any), keeps what did not change (a file whose
bytes are the same keeps its chunks; a chunk whose text is the same keeps its vector, so
re-ingesting a changed file embeds only its changed chunks), and publishes the result as
a new version. Files that cannot be read are skipped and listed; the build goes on.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from retrieval import documents, indexes
from retrieval.chunking import Chunk, check_sizes, chunk_document
from retrieval.embed import Embedder
from retrieval.store import CollectionError, CollectionStore, StoredVersion

# progress(stage, done, total): stages "read", "embed", "index", "write"
Progress = Callable[[str, int, int], None]
Mode = Literal["build", "add"]


@dataclass(frozen=True)
class IngestOptions:
    chunk_chars: int = 512
    chunk_overlap: int = 64
    index: indexes.Kind | Literal["auto"] = "auto"
    target_recall: float = 0.95
    batch_size: int = 64

    def __post_init__(self) -> None:
        check_sizes(self.chunk_chars, self.chunk_overlap)
        if not 0.0 < self.target_recall <= 1.0:
            raise ValueError(f"target recall {self.target_recall} must be in (0, 1]")


@dataclass
class BuildReport:
    collection: str
    version: str = ""
    files: int = 0
    chunks: int = 0
    sources: int = 0
    embedded: int = 0  # chunks embedded now (the rest kept their vectors)
    removed_sources: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    passed_over: int = 0  # files in folders with no readable suffix
    seconds: dict[str, float] = field(default_factory=dict)
    index: dict[str, Any] = field(default_factory=dict)
    from_scratch: str = ""  # why the live version could not be reused, if it could not
    workers: list[dict[str, Any]] = field(default_factory=list)  # Ray embedding workers

    def as_dict(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "version": self.version,
            "files": self.files,
            "sources": self.sources,
            "chunks": self.chunks,
            "embedded": self.embedded,
            "removed_sources": self.removed_sources,
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "passed_over": self.passed_over,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "index": self.index,
            "from_scratch": self.from_scratch,
            **({"workers": self.workers} if self.workers else {}),
        }


@dataclass
class _Rows:
    chunks: list[Chunk] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)  # one block per source
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)


def source_name(path: Path, root: Path) -> str:
    """How a file is named in ids and hits: relative to ``root`` when under it."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(root.resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()


def ingest(
    store: CollectionStore,
    embedder: Embedder,
    paths: Sequence[Path],
    root: Path,
    mode: Mode = "build",
    options: IngestOptions | None = None,
    progress: Progress | None = None,
    wait: bool = False,
) -> BuildReport:
    """``build``: the collection becomes exactly these files. ``add``: these files are
    added, or replace their earlier chunks; the rest stay. A build that changes nothing
    (same files, same options) publishes no version. ``wait``: for another writer to
    finish rather than fail."""
    options = options or IngestOptions()
    tick = progress or (lambda *_: None)
    report = BuildReport(store.name)
    files, passed = documents.find_files(list(paths))
    report.passed_over = len(passed)
    with store.writing(wait) as tmp:
        try:
            previous = _previous(store, embedder)
        except CollectionError as exc:
            if mode == "add":
                raise
            previous, report.from_scratch = None, str(exc)  # corrupt or another model's
        if previous is None and mode == "add":
            raise CollectionError(f"collection {store.name!r} does not exist: build it first")
        started = time.perf_counter()
        fresh: dict[str, tuple[str, list[Chunk]]] = {}
        for i, path in enumerate(files):
            tick("read", i, len(files))
            name = source_name(path, root)
            try:
                raw = documents.read_bytes(path)  # read once: hashed, then parsed if new
                digest = hashlib.sha256(raw).hexdigest()
                if previous and previous.source_sha(name) == digest:
                    fresh[name] = (digest, [])  # unchanged: its chunks are kept below
                    continue
                doc = documents.parse(raw, path, name)
            except (documents.Unreadable, OSError) as exc:
                report.skipped.append((str(path), _reason(exc)))
                continue
            fresh[name] = (digest, chunk_document(doc, options.chunk_chars, options.chunk_overlap))
        tick("read", len(files), len(files))
        report.files = len(files)
        report.seconds["parse"] = time.perf_counter() - started

        if previous is not None and _nothing_changed(previous, fresh, mode, options):
            report.version = previous.version.name
            report.chunks = previous.version.manifest["counts"]["chunks"]
            report.sources = len(previous.sources)
            return report
        rows, keep = _Rows(), set(fresh)
        if previous is not None:
            keep_old = [s for s in previous.sources if (s not in fresh or not fresh[s][1])]
            if mode == "build":
                report.removed_sources = [s for s in previous.sources if s not in fresh]
                keep_old = [s for s in keep_old if s in fresh]
            previous.copy_sources(keep_old, rows)
            keep -= set(keep_old)
        started = time.perf_counter()
        report.embedded = _embed_new(
            embedder, previous, [(s, fresh[s]) for s in sorted(keep)], rows, options, tick
        )
        report.seconds["embed"] = time.perf_counter() - started
        if not rows.chunks:
            raise CollectionError(
                f"collection {store.name!r} would hold no chunks "
                f"({len(report.skipped)} file(s) skipped, {len(files)} read)"
            )
        _write(store, tmp, embedder, rows, options, report, tick)
    return report


def delete(
    store: CollectionStore,
    embedder: Embedder,
    sources: Sequence[str],
    options: IngestOptions | None = None,
    progress: Progress | None = None,
) -> BuildReport:
    """A new version without ``sources`` (names as ``stats`` lists them)."""
    options = options or IngestOptions()
    report = BuildReport(store.name)
    with store.writing() as tmp:
        previous = _previous(store, embedder)
        if previous is None:
            raise CollectionError(f"collection {store.name!r} does not exist")
        unknown = [s for s in sources if s not in previous.sources]
        if unknown:
            raise CollectionError(
                f"collection {store.name!r} holds no source {unknown[0]!r}"
                + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
            )
        rows = _Rows()
        previous.copy_sources([s for s in previous.sources if s not in set(sources)], rows)
        report.removed_sources = list(sources)
        if not rows.chunks:
            raise CollectionError(f"deleting those would leave {store.name!r} empty")
        _write(store, tmp, embedder, rows, options, report, progress or (lambda *_: None))
    return report


class _Previous:
    """The live version, as the next one reuses it."""

    def __init__(self, version: StoredVersion) -> None:
        self.version = version
        self.sources: dict[str, dict[str, Any]] = version.manifest["sources"]
        self.vectors = version.read_vectors()
        self.db = version.connect()
        self._by_text: dict[str, int] | None = None

    def source_sha(self, source: str) -> str | None:
        info = self.sources.get(source)
        return None if info is None else str(info["sha256"])

    def copy_sources(self, sources: list[str], rows: _Rows) -> None:
        for source in sources:
            found = self.db.execute(
                "SELECT row, offset, heading, text FROM chunks WHERE source = ? ORDER BY row",
                (source,),
            ).fetchall()
            rows.chunks += [Chunk(source, o, h, t) for _, o, h, t in found]
            rows.vectors.append(np.asarray(self.vectors[[r for r, *_ in found]], np.float32))
            rows.sources[source] = self.sources[source]

    def vector_for(self, text: str) -> np.ndarray | None:
        if self._by_text is None:
            self._by_text = {t: r for r, t in self.db.execute("SELECT row, text_sha FROM chunks")}
        row = self._by_text.get(_text_sha(text))
        return None if row is None else np.asarray(self.vectors[row], np.float32)


def _previous(store: CollectionStore, embedder: Embedder) -> _Previous | None:
    if not store.exists():
        return None
    version = store.open_version()
    check_embedding(version.manifest, embedder.identity(), store.name)
    return _Previous(version)


def _nothing_changed(
    previous: _Previous,
    fresh: dict[str, tuple[str, list[Chunk]]],
    mode: Mode,
    options: IngestOptions,
) -> bool:
    manifest = previous.version.manifest
    same_options = (
        manifest["chunking"]
        == {
            "chars": options.chunk_chars,
            "overlap": options.chunk_overlap,
        }
        and (options.index in ("auto", manifest["index"]["kind"]))
        and manifest["index"].get("target_recall") == options.target_recall
    )
    unchanged = all(not chunks for _, chunks in fresh.values())
    covers = mode == "add" or set(fresh) == set(previous.sources)
    return same_options and unchanged and covers


def check_embedding(manifest: dict[str, Any], identity: dict[str, Any], name: str) -> None:
    """Refuse vectors made by another embedding model than the one reading them."""
    stored = manifest.get("embedding", {})
    for key in ("package", "version", "dim", "pooling", "normalize"):
        if stored.get(key) != identity.get(key):
            raise CollectionError(
                f"collection {name!r} was embedded with {key} {stored.get(key)!r}, "
                f"not {identity.get(key)!r}: rebuild it (mixserve index build)"
            )


def _embed_new(
    embedder: Embedder,
    previous: _Previous | None,
    items: list[tuple[str, tuple[str, list[Chunk]]]],
    rows: _Rows,
    options: IngestOptions,
    tick: Progress,
) -> int:
    chunks = [c for _, (_, cs) in items for c in cs]
    vectors = np.zeros((len(chunks), embedder.dim), np.float32)
    todo: list[int] = []
    for i, chunk in enumerate(chunks):
        reused = previous.vector_for(chunk.text) if previous else None
        if reused is None:
            todo.append(i)
        else:
            vectors[i] = reused
    step = options.batch_size * 4 * embedder.parallel  # every worker busy
    for start in range(0, len(todo), step):
        tick("embed", start, len(todo))
        part = todo[start : start + step]
        vectors[part] = embedder.embed([chunks[i].embed_text for i in part], options.batch_size)
    tick("embed", len(todo), len(todo))
    at = 0
    for source, (digest, cs) in items:
        rows.chunks += cs
        rows.vectors.append(vectors[at : at + len(cs)])
        rows.sources[source] = {"sha256": digest, "chunks": len(cs)}
        at += len(cs)
    return len(todo)


def _write(
    store: CollectionStore,
    tmp: Path,
    embedder: Embedder,
    rows: _Rows,
    options: IngestOptions,
    report: BuildReport,
    tick: Progress,
) -> None:
    started = time.perf_counter()
    vectors = np.concatenate(rows.vectors) if rows.vectors else np.zeros((0, embedder.dim))
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    total = len(vectors) + 1  # the last step: tuning the search parameter
    tick("index", 0, total)
    plan = indexes.choose(len(vectors), vectors.shape[1], options.index)
    index = indexes.build(vectors, plan, added=lambda done, _: tick("index", done, total))
    indexes.tune(index, plan, vectors, options.target_recall)
    tick("index", total, total)
    report.seconds["index"] = time.perf_counter() - started
    started = time.perf_counter()
    import faiss

    faiss.write_index(index, str(tmp / "index.faiss"))
    np.save(tmp / "vectors.npy", vectors.astype(np.float16))
    _write_chunks(tmp / "chunks.sqlite", rows.chunks)
    bytes_per_vector = (tmp / "index.faiss").stat().st_size / max(len(vectors), 1)
    manifest: dict[str, Any] = {
        "embedding": embedder.identity(),
        "metric": "inner_product",
        "index": {**plan.as_dict(), "bytes_per_vector": round(bytes_per_vector, 1)},
        "chunking": {"chars": options.chunk_chars, "overlap": options.chunk_overlap},
        "counts": {"chunks": len(rows.chunks), "sources": len(rows.sources)},
        "sources": rows.sources,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    report.version = store.publish(tmp, manifest)
    report.seconds["write"] = time.perf_counter() - started
    report.chunks, report.sources = len(rows.chunks), len(rows.sources)
    report.index = manifest["index"]
    tick("write", 1, 1)


def _write_chunks(path: Path, chunks: list[Chunk]) -> None:
    db = sqlite3.connect(path)
    try:
        db.execute(
            "CREATE TABLE chunks (row INTEGER PRIMARY KEY, id TEXT NOT NULL, source TEXT NOT "
            "NULL, offset INTEGER NOT NULL, heading TEXT NOT NULL, text TEXT NOT NULL, "
            "text_sha TEXT NOT NULL)"
        )
        db.executemany(
            "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                (i, c.id, c.source, c.offset, c.heading, c.text, _text_sha(c.text))
                for i, c in enumerate(chunks)
            ),
        )
        db.execute("CREATE INDEX by_source ON chunks (source)")
        # words, for the lexical half of hybrid search (BM25 over heading and text)
        db.execute(
            "CREATE VIRTUAL TABLE words USING fts5(heading, text, content='chunks', "
            "content_rowid='row', tokenize='unicode61 remove_diacritics 2')"
        )
        db.execute("INSERT INTO words (rowid, heading, text) SELECT row, heading, text FROM chunks")
        db.commit()
    finally:
        db.close()


def _text_sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _reason(exc: BaseException) -> str:
    if isinstance(exc, documents.Unreadable):
        return str(exc)
    return f"unreadable: {getattr(exc, 'strerror', None) or exc}"
