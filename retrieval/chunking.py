"""Split a document into overlapping chunks that are exact spans of its text.

Each chunk keeps its source offset (so ids are stable: ``source#offset``) and the heading
in force where it starts. Cuts fall, in order of preference, at a heading, a paragraph
break, a sentence end, a space; adjacent chunks share about ``overlap`` characters, except
across a heading, so a fact straddling a cut is still found whole in one of them.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from retrieval.documents import Document


@dataclass(frozen=True)
class Chunk:
    source: str
    offset: int
    heading: str
    text: str

    @property
    def id(self) -> str:
        return f"{self.source}#{self.offset}"

    @property
    def embed_text(self) -> str:
        """What is embedded: the heading path gives a bare paragraph its context."""
        return f"{self.heading}\n{self.text}" if self.heading else self.text


def check_sizes(size: int, overlap: int) -> None:
    if size < 50:
        raise ValueError(f"chunk size {size} is too small (at least 50 characters)")
    if not 0 <= overlap < size // 2:
        raise ValueError(f"chunk overlap {overlap} must be at least 0 and under half of {size}")


def spans(text: str, size: int, overlap: int, breaks: Sequence[int] = ()) -> list[tuple[int, int]]:
    """(start, end) spans of ``text`` of at most ``size`` characters, stripped of outer
    whitespace. ``breaks`` are offsets a chunk must not run across (headings)."""
    check_sizes(size, overlap)
    hard = sorted(b for b in breaks if b > 0)
    out: list[tuple[int, int]] = []
    n = len(text)
    start = _skip_space(text, 0)
    while start < n:
        limit = min(start + size, n)
        i = bisect.bisect_right(hard, start)
        at_heading = i < len(hard) and hard[i] <= limit
        if at_heading:
            end = hard[i]
        elif limit == n:
            end = n
        else:
            end = _cut(text, start, limit, size)
        stop = end
        while stop > start and text[stop - 1].isspace():
            stop -= 1
        if stop > start:
            out.append((start, stop))
        if end >= n:
            break
        nxt = (
            end
            if at_heading or not overlap
            else _word_start(text, max(end - overlap, start + 1), end)
        )
        start = _skip_space(text, max(nxt, start + 1))
    return out


def chunk_document(doc: Document, size: int, overlap: int) -> list[Chunk]:
    breaks = [offset for offset, _ in doc.headings]
    return [
        Chunk(doc.source, a, doc.heading_at(a), doc.text[a:b])
        for a, b in spans(doc.text, size, overlap, breaks)
    ]


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _cut(text: str, start: int, limit: int, size: int) -> int:
    """The best place to end a chunk that starts at ``start``, at most ``limit``."""
    floor = start + size // 3
    for sep in ("\n\n", ". ", ".\n", "? ", "! ", "\n", " "):
        at = text.rfind(sep, floor, limit)
        if at >= 0:
            return at + len(sep)
    return limit


def _word_start(text: str, i: int, end: int) -> int:
    """The first word start at or after ``i`` (before ``end``), for the overlap."""
    while i < end and not text[i - 1].isspace():
        i += 1
    return i if i < end else end
