"""A collection on disk: numbered versions, one of them live.

```
<data_dir>/<collection>/
  CURRENT                 the live version's name ("v000003"), switched by one rename
  .lock                   held by the one writer (build, add, delete)
  versions/v000003/       manifest.json, index.faiss, chunks.sqlite, vectors.npy
```

A version is written in full to a hidden folder, flushed, renamed into ``versions/``,
and only then made live by replacing ``CURRENT``: a build that dies (killed, disk full)
leaves the live version as it was. The manifest records the embedding model, dimension,
metric, index, counts and every file's size and sha256; ``open_version`` checks them and
raises ``CollectionError`` rather than serve from a damaged or mismatched version.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from weights import file_sha256 as sha256

FORMAT = 2  # 2: chunks.sqlite holds the FTS5 word index hybrid search reads
KEEP_VERSIONS = 3  # the live one and two before it (readers may still hold them)
FILES = ("index.faiss", "chunks.sqlite", "vectors.npy")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_VERSION = re.compile(r"^v(\d{6})$")


class CollectionError(RuntimeError):
    """A collection that is missing, corrupt, locked or does not match what reads it."""


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise CollectionError(
            f"collection name {name!r} must be 1-64 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return name


@dataclass
class StoredVersion:
    """One version's files, checked against its manifest."""

    name: str
    folder: Path
    manifest: dict[str, Any]

    def read_index(self) -> Any:
        import faiss

        return faiss.read_index(str(self.folder / "index.faiss"))

    def read_vectors(self) -> np.ndarray:
        return np.load(self.folder / "vectors.npy", mmap_mode="r")

    def connect(self) -> sqlite3.Connection:
        uri = f"file:{self.folder / 'chunks.sqlite'}?mode=ro&immutable=1"
        return sqlite3.connect(uri, uri=True, check_same_thread=False)


class CollectionStore:
    def __init__(self, data_dir: Path, name: str) -> None:
        self.name = check_name(name)
        self.root = data_dir / name
        self.versions = self.root / "versions"

    def exists(self) -> bool:
        return (self.root / "CURRENT").exists()

    def current(self) -> str | None:
        """The live version's name, or None before the first build."""
        try:
            name = (self.root / "CURRENT").read_text().strip()
        except FileNotFoundError:
            return None
        if not _VERSION.match(name):
            raise CollectionError(f"{self.root / 'CURRENT'} names no version ({name[:40]!r})")
        return name

    def open_version(self, name: str | None = None, verify: bool = True) -> StoredVersion:
        """The live (or named) version; with ``verify``, every file's size and sha256."""
        name = name or self.current()
        if name is None:
            raise CollectionError(f"collection {self.name!r} does not exist (no build yet)")
        folder = self.versions / name
        try:
            manifest = json.loads((folder / "manifest.json").read_text())
            files = manifest["files"]
        except FileNotFoundError as exc:
            raise CollectionError(f"collection {self.name!r}: version {name} is missing") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise CollectionError(f"{folder / 'manifest.json'} is unreadable: {exc}") from exc
        if manifest.get("format") != FORMAT:
            raise CollectionError(f"{folder}: format {manifest.get('format')} is not {FORMAT}")
        for file in FILES:
            path = folder / file
            expected = files.get(file, {})
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                raise CollectionError(f"{path} is missing") from None
            if size != expected.get("bytes"):
                raise CollectionError(
                    f"{path} is {size} bytes, its manifest says {expected.get('bytes')}"
                )
            if verify and sha256(path) != expected.get("sha256"):
                raise CollectionError(f"{path} does not match its checksum")
        return StoredVersion(name, folder, manifest)

    def version_names(self) -> list[str]:
        if not self.versions.exists():
            return []
        return sorted(p.name for p in self.versions.iterdir() if _VERSION.match(p.name))

    @contextlib.contextmanager
    def writing(self, wait: bool = False) -> Iterator[Path]:
        """The one writer's lock (waited for, or refused at once) and a fresh hidden
        folder to write a version into (removed unless ``publish`` moved it); stale folders
        of dead builds are cleared."""
        self.versions.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                raise CollectionError(
                    f"collection {self.name!r} is being written by another process"
                ) from None
            for stale in self.versions.glob(".build-*"):
                shutil.rmtree(stale, ignore_errors=True)
            tmp = self.versions / f".build-{os.getpid()}"
            tmp.mkdir()
            try:
                yield tmp
            finally:
                shutil.rmtree(tmp, ignore_errors=True)

    def publish(self, tmp: Path, manifest: dict[str, Any]) -> str:
        """Checksum the files in ``tmp``, write its manifest, move it into ``versions/``
        and make it live; the oldest versions beyond ``KEEP_VERSIONS`` are removed."""
        names = self.version_names()
        name = f"v{int(names[-1][1:]) + 1 if names else 1:06d}"
        manifest = {**manifest, "format": FORMAT, "collection": self.name, "version": name}
        manifest["files"] = {
            f: {"bytes": (tmp / f).stat().st_size, "sha256": sha256(tmp / f)} for f in FILES
        }
        _write_synced(tmp / "manifest.json", json.dumps(manifest, indent=1).encode())
        for f in FILES:
            _fsync(tmp / f)
        final = self.versions / name
        os.rename(tmp, final)
        _fsync_dir(self.versions)
        _write_synced(self.root / "CURRENT.tmp", f"{name}\n".encode())
        os.replace(self.root / "CURRENT.tmp", self.root / "CURRENT")
        _fsync_dir(self.root)
        for old in self.version_names()[:-KEEP_VERSIONS]:
            shutil.rmtree(self.versions / old, ignore_errors=True)
        return name


def list_collections(data_dir: Path) -> list[str]:
    if not data_dir.is_dir():
        return []
    return sorted(p.name for p in data_dir.iterdir() if (p / "CURRENT").exists())


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    _fsync(path)
