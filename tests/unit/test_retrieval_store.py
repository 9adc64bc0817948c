import errno
import json
import threading

import numpy as np
import pytest

from retrieval import (
    CollectionError,
    CollectionStore,
    IngestOptions,
    LiveCollection,
    delete,
    ingest,
)
from tests.helpers.documents import HashingEmbedder


@pytest.fixture
def corpus(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "cats.md").write_text("# Cats\n\nCats purr softly when they are content.")
    (docs / "dogs.md").write_text("# Dogs\n\nDogs bark loudly at the postman.")
    (docs / "lists.txt").write_text("Python lists reverse in place with reverse().")
    (docs / "image.md").write_bytes(b"\0\0binary")
    (docs / "empty.txt").write_text("")
    return docs


def top(store, embedder, query, k=1):
    live = LiveCollection(store, embedder.identity())
    return live.search(embedder.embed([query]), k)[0]


def test_build_lists_skipped_files_and_search_names_source_and_offset(tmp_path, corpus):
    store, emb = CollectionStore(tmp_path / "data", "pets"), HashingEmbedder()
    report = ingest(store, emb, [corpus], corpus)
    assert report.version == "v000001" and report.sources == 3 and report.chunks == 3
    assert sorted((p.split("/")[-1], why.split(":")[0]) for p, why in report.skipped) == [
        ("empty.txt", "empty"), ("image.md", "binary"),
    ]  # fmt: skip
    hit = top(store, emb, "how does python reverse lists")[0]
    assert (hit.source, hit.offset, hit.id) == ("lists.txt", 0, "lists.txt#0")
    manifest = store.open_version().manifest
    assert manifest["embedding"]["dim"] == 64 and manifest["index"]["kind"] == "flat"
    assert manifest["counts"] == {"chunks": 3, "sources": 3}
    assert set(manifest["files"]) == {"index.faiss", "chunks.sqlite", "vectors.npy"}


def test_changed_file_replaces_its_chunks_and_only_they_are_embedded(tmp_path, corpus):
    store, emb = CollectionStore(tmp_path / "data", "pets"), HashingEmbedder()
    ingest(store, emb, [corpus], corpus)
    emb.embedded.clear()
    again = ingest(store, emb, [corpus], corpus)
    assert again.version == "v000001" and emb.embedded == []  # nothing changed: no version
    (corpus / "dogs.md").write_text("# Dogs\n\nDogs howl at the moon.")
    report = ingest(store, emb, [corpus / "dogs.md"], corpus, "add")
    assert report.version == "v000002" and report.embedded == 1 and report.sources == 3
    assert emb.embedded == ["Dogs\n# Dogs\n\nDogs howl at the moon."]
    assert top(store, emb, "dogs howl at the moon")[0].text.endswith("howl at the moon.")
    assert all("postman" not in h.text for h in top(store, emb, "postman", 3))


def test_build_removes_sources_no_longer_given_and_delete_removes_named(tmp_path, corpus):
    store, emb = CollectionStore(tmp_path / "data", "pets"), HashingEmbedder()
    ingest(store, emb, [corpus], corpus)
    report = ingest(store, emb, [corpus / "cats.md", corpus / "dogs.md"], corpus)
    assert report.removed_sources == ["lists.txt"] and report.sources == 2
    report = delete(store, emb, ["cats.md"])
    assert report.sources == 1 and report.version == "v000003"
    with pytest.raises(CollectionError, match=r"no source 'nope\.md'"):
        delete(store, emb, ["nope.md"])
    with pytest.raises(CollectionError, match="empty"):
        delete(store, emb, ["dogs.md"])
    with pytest.raises(CollectionError, match="does not exist"):
        ingest(CollectionStore(tmp_path / "data", "other"), emb, [corpus], corpus, "add")


def test_corrupt_or_foreign_versions_are_refused(tmp_path, corpus):
    store, emb = CollectionStore(tmp_path / "data", "pets"), HashingEmbedder()
    ingest(store, emb, [corpus], corpus)
    index_file = store.versions / "v000001" / "index.faiss"
    data = bytearray(index_file.read_bytes())
    data[-1] ^= 0xFF
    index_file.write_bytes(bytes(data))
    with pytest.raises(CollectionError, match="checksum"):
        store.open_version()
    index_file.write_bytes(bytes(data[:-1]))
    with pytest.raises(CollectionError, match="bytes, its manifest says"):
        store.open_version(verify=False)
    other = HashingEmbedder()
    other.dim = 32
    ingest(CollectionStore(tmp_path / "data", "b"), HashingEmbedder(), [corpus], corpus)
    with pytest.raises(CollectionError, match="embedded with dim 64, not 32"):
        LiveCollection(CollectionStore(tmp_path / "data", "b"), other.identity()).open()
    (store.root / "CURRENT").write_text("garbage")
    with pytest.raises(CollectionError, match="names no version"):
        store.open_version()


@pytest.mark.parametrize("stage", ["vectors", "chunks"])
def test_a_build_that_dies_leaves_the_live_version_serving(tmp_path, corpus, monkeypatch, stage):
    store, emb = CollectionStore(tmp_path / "data", "pets"), HashingEmbedder()
    ingest(store, emb, [corpus], corpus)
    (corpus / "cats.md").write_text("# Cats\n\nCats sleep all day.")

    def disk_full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    target = "retrieval.build.np.save" if stage == "vectors" else "retrieval.build._write_chunks"
    monkeypatch.setattr(target, disk_full)
    with pytest.raises(OSError, match="No space"):
        ingest(store, emb, [corpus], corpus)
    monkeypatch.undo()
    assert store.current() == "v000001" and store.version_names() == ["v000001"]
    assert not list(store.versions.glob(".build-*"))
    assert "purr" in top(store, emb, "cats purr")[0].text
    assert ingest(store, emb, [corpus], corpus).version == "v000002"


def test_one_writer_at_a_time(tmp_path, corpus):
    store, emb = CollectionStore(tmp_path / "data", "pets"), HashingEmbedder()
    ingest(store, emb, [corpus], corpus)
    with store.writing():
        with pytest.raises(CollectionError, match="another process"):
            ingest(CollectionStore(tmp_path / "data", "pets"), emb, [corpus], corpus)


def test_live_collection_follows_new_versions_and_keeps_serving_through_a_bad_one(tmp_path, corpus):
    store, emb = CollectionStore(tmp_path / "data", "pets"), HashingEmbedder()
    ingest(store, emb, [corpus], corpus)
    live = LiveCollection(store, emb.identity(), check_every_s=0)
    query = emb.embed(["zebras gallop"])
    assert "zebras" not in live.search(query, 1)[0][0].text
    (corpus / "zebra.md").write_text("Zebras gallop across the plain.")
    ingest(store, emb, [corpus], corpus)
    assert live.search(query, 1)[0][0].source == "zebra.md" and live.current.name == "v000002"
    (corpus / "zebra.md").write_text("Zebras gallop and graze across the plain.")
    ingest(store, emb, [corpus], corpus)
    (store.versions / "v000003" / "chunks.sqlite").write_bytes(b"broken")
    assert live.search(query, 1)[0][0].source == "zebra.md" and live.current.name == "v000002"


def test_searches_during_swaps_never_fail(tmp_path, corpus):
    store, emb = CollectionStore(tmp_path / "data", "pets"), HashingEmbedder()
    ingest(store, emb, [corpus], corpus)
    live = LiveCollection(store, emb.identity(), check_every_s=0)
    query, failures, done = emb.embed(["cats purr"]), [], threading.Event()

    def searching():
        while not done.is_set():
            try:
                assert live.search(query, 2)[0]
            except Exception as exc:  # noqa: BLE001 - any failure is what the test looks for
                failures.append(exc)

    worker = threading.Thread(target=searching)
    worker.start()
    for i in range(8):
        (corpus / f"extra{i}.md").write_text(f"Extra note number {i} about hamsters.")
        ingest(store, emb, [corpus], corpus)
    done.set()
    worker.join()
    # the worker may have stopped before it next looked: the next search follows the last
    assert failures == [] and live.search(query, 2)[0] and live.current.name == "v000009"
    assert store.version_names() == ["v000007", "v000008", "v000009"]


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="overlap"):
        IngestOptions(chunk_chars=100, chunk_overlap=80)
    with pytest.raises(ValueError, match="target recall"):
        IngestOptions(target_recall=1.5)
    with pytest.raises(CollectionError, match="must be 1-64"):
        CollectionStore(__import__("pathlib").Path("/tmp"), "../escape")


def test_manifest_is_json_with_checksums(tmp_path, corpus):
    store = CollectionStore(tmp_path / "data", "pets")
    ingest(store, HashingEmbedder(), [corpus], corpus)
    manifest = json.loads((store.versions / "v000001" / "manifest.json").read_text())
    assert all(len(f["sha256"]) == 64 for f in manifest["files"].values())
    vectors = np.load(store.versions / "v000001" / "vectors.npy")
    assert vectors.shape == (3, 64)


def test_hybrid_search_finds_by_words_what_vectors_miss_and_scores_by_cosine(tmp_path, corpus):
    store, emb = CollectionStore(tmp_path / "data", "pets"), HashingEmbedder()
    (corpus / "mascot.md").write_text("Our mascot is a capybara named Zanzibar.")
    ingest(store, emb, [corpus], corpus)
    live = LiveCollection(store, emb.identity())
    elsewhere = emb.embed(["dogs bark loudly"])  # a vector pointing away from the mascot
    assert all(h.source != "mascot.md" for h in live.search(elsewhere, 2)[0])
    hits = live.search(elsewhere, 2, ["Zanzibar?"])[0]
    assert "mascot.md" in [h.source for h in hits]
    for h in hits:
        expected = float(
            emb.embed([h.heading + "\n" + h.text if h.heading else h.text])[0] @ elsewhere[0]
        )
        assert abs(h.score - expected) < 1e-2  # cosine, from the stored (float16) vectors
    no_words = live.search(elsewhere, 1, ["!!"])[0]  # nothing to match: the vectors' answer
    assert [h.id for h in no_words] == [h.id for h in live.search(elsewhere, 1)[0]]


def test_a_build_over_a_corrupt_or_foreign_version_starts_from_scratch(tmp_path, corpus):
    store, emb = CollectionStore(tmp_path / "data", "pets"), HashingEmbedder()
    ingest(store, emb, [corpus], corpus)
    (store.versions / "v000001" / "vectors.npy").write_bytes(b"broken")
    with pytest.raises(CollectionError, match="bytes, its manifest says"):
        ingest(store, emb, [corpus / "cats.md"], corpus, "add")  # add needs what is there
    report = ingest(store, emb, [corpus], corpus)
    assert "manifest says" in report.from_scratch and report.version == "v000002"
    other = HashingEmbedder()
    other.package = "another-model"
    report = ingest(store, other, [corpus], corpus)
    assert "embedded with package 'hashing-test'" in report.from_scratch
    assert LiveCollection(store, other.identity()).open().name == "v000003"
