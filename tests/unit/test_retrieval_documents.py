import itertools

import pytest

from retrieval import documents
from retrieval.chunking import chunk_document, spans
from tests.helpers.documents import write_pdf


def test_markdown_headings_nest_and_skip_code_fences(tmp_path):
    md = "# Guide\n\nintro\n\n## Install\n\npip it\n\n```\n# not a heading\n```\n\n# Other\n\nend"
    (tmp_path / "a.md").write_text(md)
    doc = documents.read(tmp_path / "a.md", "a.md")
    assert doc.text == md
    assert doc.heading_at(md.index("pip it")) == "Guide > Install"
    assert doc.heading_at(md.index("not a heading")) == "Guide > Install"
    assert doc.heading_at(md.index("end")) == "Other"
    assert doc.heading_at(0) == "Guide"


def test_html_keeps_visible_text_and_headings(tmp_path):
    (tmp_path / "p.html").write_text(
        "<html><head><title>t</title><script>var x = 1;</script></head><body>"
        "<nav>menu</nav><h1>Lists<a class='headerlink'>¶</a></h1><p>A list holds items.</p>"
        "<h2>Sorting</h2><p>Use <code>sorted()</code> to sort.</p><style>p{}</style></body></html>"
    )
    doc = documents.read(tmp_path / "p.html", "p.html")
    assert "var x" not in doc.text and "menu" not in doc.text and "p{}" not in doc.text
    assert "A list holds items." in doc.text and "Use sorted() to sort." in doc.text
    assert doc.heading_at(doc.text.index("Use sorted")) == "Lists > Sorting"


def test_pdf_pages_are_read_with_page_headings(tmp_path):
    write_pdf(tmp_path / "f.pdf", ["The first page says hello.", "Page two says goodbye."])
    doc = documents.read(tmp_path / "f.pdf", "f.pdf")
    assert "first page says hello" in doc.text and "two says goodbye" in doc.text
    assert doc.heading_at(doc.text.index("goodbye")) == "page 2"


@pytest.mark.parametrize(
    ("name", "data", "why"),
    [
        ("blob.md", b"\x89PNG\r\n\x1a\n\0\0\0IHDR", "binary"),
        ("empty.txt", b"  \n\n ", "empty"),
        ("bad.pdf", b"%PDF-1.4\nnot really a pdf", "unreadable PDF"),
        ("latin.txt", bytes(range(128, 256)) * 8, "binary"),
    ],
)
def test_files_that_cannot_be_read_say_why(tmp_path, name, data, why):
    (tmp_path / name).write_bytes(data)
    with pytest.raises(documents.Unreadable, match=why):
        documents.read(tmp_path / name, name)


def test_folders_are_walked_for_known_suffixes_and_missing_paths_fail(tmp_path):
    (tmp_path / "d" / "e").mkdir(parents=True)
    for name in ("d/a.md", "d/e/b.HTML", "d/c.png", "d/.hidden.md", "x.log"):
        (tmp_path / name).write_text("text")
    found, passed = documents.find_files([tmp_path / "d", tmp_path / "x.log"])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["d/a.md", "d/e/b.HTML", "x.log"]
    assert [p.name for p in passed] == ["c.png"]
    with pytest.raises(FileNotFoundError):
        documents.find_files([tmp_path / "absent"])


def test_spans_are_exact_bounded_overlapping_and_stop_at_headings():
    text = "\n\n".join(f"Paragraph {i}. " + "word " * 30 for i in range(20))
    cut = spans(text, 300, 60)
    assert all(0 < b - a <= 300 for a, b in cut)
    assert all(text[a:b] == text[a:b].strip() for a, b in cut)
    assert all(a2 < b1 for (_, b1), (a2, _) in itertools.pairwise(cut))  # overlap
    covered = set()
    for a, b in cut:
        covered.update(range(a, b))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())
    heading_at = text.index("Paragraph 7.")
    assert any(a == heading_at for a, _ in spans(text, 300, 60, [heading_at]))
    assert not any(a < heading_at < b for a, b in spans(text, 300, 60, [heading_at]))


def test_chunk_ids_are_stable_when_text_is_appended(tmp_path):
    body = "# T\n\n" + "\n\n".join(f"Fact {i}: the value is {i * 7}." for i in range(40))
    first = chunk_document(documents.Document("s.md", body, [(0, "T")]), 200, 40)
    longer = chunk_document(documents.Document("s.md", body + "\n\nMore.", [(0, "T")]), 200, 40)
    assert [c.id for c in first[:-1]] == [c.id for c in longer[: len(first) - 1]]
    assert first[0].id == "s.md#0" and first[0].embed_text.startswith("T\n")


def test_sizes_are_checked():
    with pytest.raises(ValueError, match="overlap"):
        spans("x" * 100, 100, 60)
    with pytest.raises(ValueError, match="too small"):
        spans("x", 10, 0)
