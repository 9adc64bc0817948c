import hashlib

import numpy as np
import pytest

from retrieval import CorruptIndexError, PassageIndex, chunk_text
from retrieval.chunking import Passage, chunk_files, collect_files


def hashing_embed(texts):
    """A deterministic bag-of-words embedding: enough to test indexing, no model needed."""
    out = np.zeros((len(texts), 64), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in text.lower().split():
            out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % 64] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def test_chunks_respect_size_and_keep_all_words():
    text = "\n\n".join(f"Paragraph {i}. " + "word " * 30 for i in range(20))
    chunks = chunk_text(text, 300, 50)
    assert all(len(c) <= 300 for c in chunks)
    assert len(chunks) > 5
    joined = " ".join(chunks)
    for i in range(20):
        assert f"Paragraph {i}." in joined


def test_overlap_must_be_smaller_than_size():
    with pytest.raises(ValueError):
        chunk_text("x", 100, 100)


def test_index_round_trip_and_corruption_is_detected(tmp_path):
    passages = [
        Passage(f"p{i}", "s", t)
        for i, t in enumerate(["cats purr softly", "dogs bark loudly", "python lists reverse"])
    ]
    index = PassageIndex.build(passages, hashing_embed, "fp1")
    index.save(tmp_path / "col")
    loaded = PassageIndex.load(tmp_path / "col")
    hits = loaded.search(hashing_embed(["how do python lists reverse"]), 2)[0]
    assert hits[0][0].id == "p2" and hits[0][1] > hits[1][1]
    assert loaded.fingerprint == "fp1"
    (tmp_path / "col" / "passages.json").write_text("[]")
    with pytest.raises(CorruptIndexError, match="checksum"):
        PassageIndex.load(tmp_path / "col")


def test_missing_paths_are_an_error_and_sources_are_relative(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.md").write_text("alpha\n\nbeta")
    files = collect_files([tmp_path / "d"])
    passages = chunk_files(files, tmp_path, 100, 10)
    assert passages[0].source == "d/a.md" and passages[0].id == "d/a.md#0"
    with pytest.raises(FileNotFoundError):
        collect_files([tmp_path / "absent"])
