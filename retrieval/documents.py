"""Read documents (text, Markdown, reStructuredText, HTML, PDF) into plain text with the
heading in force at every offset.

Offsets are character offsets into the text this module extracts: for text and Markdown
files that is the file's own (decoded) text; for HTML the visible text, with block
elements separated by blank lines; for PDF the pages' text, one page after another.
A file that cannot be read, looks binary or holds no text is not an error: ``read``
raises ``Unreadable`` with the reason, and the build lists it and goes on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

TEXT = {".txt", ".text", ".rst"}
MARKDOWN = {".md", ".markdown"}
HTML = {".html", ".htm", ".xhtml"}
PDF = {".pdf"}
SUFFIXES = TEXT | MARKDOWN | HTML | PDF
MAX_BYTES = 64 * 1024 * 1024  # larger files are listed as skipped, not read into memory

_MD_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_BLOCKS = {
    "p", "div", "section", "article", "li", "ul", "ol", "dl", "dt", "dd", "pre", "table",
    "tr", "td", "th", "blockquote", "br", "hr", "figure", "figcaption", "main", "aside",
}  # fmt: skip
_SKIP = {"script", "style", "noscript", "head", "nav", "footer", "template", "svg", "form"}


class Unreadable(Exception):
    """A file the build skips; the message says why (binary, empty, unreadable, ...)."""


@dataclass
class Document:
    source: str
    text: str
    # (offset, heading path) pairs, by offset: the heading that applies from there on
    headings: list[tuple[int, str]] = field(default_factory=list)

    def heading_at(self, offset: int) -> str:
        current = ""
        for start, heading in self.headings:
            if start > offset:
                break
            current = heading
        return current


def find_files(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """Files to read and files passed over. Folders are walked recursively for the known
    suffixes (others are passed over); a file named directly is always read. A path that
    does not exist raises ``FileNotFoundError``."""
    found: list[Path] = []
    passed: list[Path] = []
    for path in paths:
        if path.is_dir():
            for p in sorted(path.rglob("*")):
                if p.is_file() and not any(part.startswith(".") for part in p.parts[-1:]):
                    (found if p.suffix.lower() in SUFFIXES else passed).append(p)
        elif path.exists():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path} does not exist")
    return list(dict.fromkeys(found)), passed


def read(path: Path, source: str) -> Document:
    """The document at ``path``, named ``source`` in hits and ids."""
    return parse(read_bytes(path), path, source)


def read_bytes(path: Path) -> bytes:
    """The file's bytes (``Unreadable`` past ``MAX_BYTES`` or when it cannot be read)."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise Unreadable(f"larger than {MAX_BYTES // 2**20} MiB")
        return path.read_bytes()
    except OSError as exc:
        raise Unreadable(f"unreadable: {exc.strerror or exc}") from exc


def parse(raw: bytes, path: Path, source: str) -> Document:
    """The document in ``raw``, the bytes of ``path`` (its suffix says the format)."""
    suffix = path.suffix.lower()
    if suffix in PDF or raw.startswith(b"%PDF-"):
        doc = _pdf(raw, source)
    else:
        text = _decode(raw)
        if suffix in HTML or (suffix not in TEXT | MARKDOWN and _looks_html(text)):
            doc = _html(text, source)
        elif suffix in TEXT:
            doc = Document(source, text)
        else:
            doc = Document(source, text, _markdown_headings(text))
    if not doc.text.strip():
        raise Unreadable("empty: no text")
    return doc


def _decode(raw: bytes) -> str:
    if b"\0" in raw[:8192]:
        raise Unreadable("binary: not a text file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="replace")
        if text.count("\ufffd") > max(8, len(text) // 100):
            raise Unreadable("binary: not UTF-8 text") from None
        return text


def _looks_html(text: str) -> bool:
    head = text[:1024].lstrip().lower()
    return head.startswith("<!doctype html") or head.startswith("<html")


def _markdown_headings(text: str) -> list[tuple[int, str]]:
    """Heading paths ("Guide > Install") from ATX headings, outside fenced code."""
    fences = [m.span() for m in re.finditer(r"^```.*?^```", text, re.MULTILINE | re.DOTALL)]
    path: list[tuple[int, str]] = []
    out: list[tuple[int, str]] = []
    for m in _MD_HEADING.finditer(text):
        if any(a <= m.start() < b for a, b in fences):
            continue
        level = len(m.group(1))
        path = [(lvl, t) for lvl, t in path if lvl < level] + [(level, m.group(2).strip())]
        out.append((m.start(), " > ".join(t for _, t in path)))
    return out


def _html(markup: str, source: str) -> Document:
    """Visible text of an HTML page, blocks separated by blank lines, headings tracked."""
    import lxml.html
    from lxml import etree

    try:
        root = lxml.html.document_fromstring(markup)
    except (etree.ParserError, ValueError) as exc:
        raise Unreadable(f"unparsable HTML: {exc}") from exc
    parts: list[str] = []
    size = 0
    headings: list[tuple[int, str]] = []
    path: list[tuple[int, str]] = []

    def emit(text: str) -> None:
        nonlocal size
        parts.append(text)
        size += len(text)

    def brk() -> None:
        if parts and not parts[-1].endswith("\n\n"):
            emit("\n\n")

    def walk(el: etree._Element) -> None:
        nonlocal path
        tag = el.tag if isinstance(el.tag, str) else ""
        if tag in _SKIP or "headerlink" in (el.get("class") or ""):  # Sphinx's ¶ anchors
            if el.tail:
                emit(el.tail)
            return
        if len(tag) == 2 and tag[0] == "h" and tag[1] in "123456":
            brk()
            title = " ".join(el.text_content().split()).rstrip("¶ ").strip()
            if title:
                level = int(tag[1])
                path = [(lvl, t) for lvl, t in path if lvl < level] + [(level, title)]
                headings.append((size, " > ".join(t for _, t in path)))
                emit(title)
                brk()
        else:
            block = tag in _BLOCKS
            if block:
                brk()
            if el.text:
                emit(el.text if tag == "pre" else re.sub(r"\s+", " ", el.text))
            for child in el:
                walk(child)
            if block:
                brk()
        if el.tail:
            emit(re.sub(r"\s+", " ", el.tail))

    body = root.find("body")
    walk(body if body is not None else root)
    return Document(source, "".join(parts).strip("\n"), headings)


def _pdf(raw: bytes, source: str) -> Document:
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(raw))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise Unreadable(f"unreadable PDF: {exc}") from exc
    text, headings = "", []
    for i, page in enumerate(pages, 1):
        if page.strip():
            if text:
                text += "\n\n"
            headings.append((len(text), f"page {i}"))
            text += page.strip()
    return Document(source, text, headings)
