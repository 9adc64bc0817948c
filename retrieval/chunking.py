"""Split documents into overlapping passages along paragraph boundaries."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

TEXT_SUFFIXES = {".md", ".txt", ".rst"}


@dataclass(frozen=True)
class Passage:
    id: str
    source: str
    text: str


def chunk_text(text: str, size: int, overlap: int) -> list[str]:
    """Greedy packing of paragraphs into chunks of about ``size`` characters.

    A paragraph longer than ``size`` is cut at sentence or word boundaries. Adjacent
    chunks share up to ``overlap`` trailing characters of the previous chunk so that a
    fact straddling a boundary is still found whole in one of them.
    """
    if overlap >= size:
        raise ValueError("chunk_overlap must be smaller than chunk_chars")
    pieces: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        para = para.strip()
        while len(para) > size:
            cut = max(para.rfind(". ", 0, size), para.rfind(" ", 0, size))
            cut = cut + 1 if cut > size // 2 else size
            pieces.append(para[:cut].strip())
            para = para[cut:].strip()
        if para:
            pieces.append(para)
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + len(piece) + 2 > size:
            chunks.append(current)
            tail = current[-overlap:] if overlap else ""
            space = tail.find(" ")
            tail = tail[space + 1 :] if 0 <= space < len(tail) - 1 else tail
            current = f"{tail}\n\n{piece}" if tail and len(tail) + len(piece) + 2 <= size else piece
        else:
            current = f"{current}\n\n{piece}" if current else piece
    if current:
        chunks.append(current)
    return chunks


def collect_files(paths: list[Path]) -> list[Path]:
    """Text files named directly or found under named folders, sorted, missing ones an error."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix in TEXT_SUFFIXES and p.is_file())
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"retrieval path {path} does not exist")
    return files


def chunk_files(files: list[Path], root: Path, size: int, overlap: int) -> list[Passage]:
    passages: list[Passage] = []
    for file in files:
        try:
            source = str(file.resolve().relative_to(root.resolve()))
        except ValueError:
            source = file.name
        text = file.read_text(encoding="utf-8", errors="replace")
        for i, chunk in enumerate(chunk_text(text, size, overlap)):
            passages.append(Passage(f"{source}#{i}", source, chunk))
    return passages
