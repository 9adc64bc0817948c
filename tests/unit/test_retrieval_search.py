"""How a collection ranks hits: the hybrid mix of vector and word scores, and how a
search over several collections merges them."""

import numpy as np
import pytest

from retrieval import CollectionSpec, CollectionStore, LiveCollection, Retriever, ingest
from tests.helpers.documents import HashingEmbedder

FILLER = "the fox runs past the barn and the fox sleeps"


@pytest.fixture
def live(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "zebra.md").write_text("zebra zebra stripes grass savanna herd")
    (docs / "fox.md").write_text("the the fox fox the fox")
    for i in range(8):
        (docs / f"filler{i}.md").write_text(FILLER + " moon" * i)  # no two equally close
    store = CollectionStore(tmp_path / "data", "animals")
    emb = HashingEmbedder()
    ingest(store, emb, [docs], docs)
    return LiveCollection(store, emb.identity()), emb


def ranked(live, emb, query, weight, k=3):
    version = live.current or live.open()
    version.lexical_weight = weight
    return live.search(emb.embed([query]), k, [query])[0]


def test_words_alone_rank_the_rare_word_first_vectors_alone_the_closest(live):
    collection, emb = live
    query = "the fox zebra"
    by_words = ranked(collection, emb, query, 1.0)
    by_vectors = ranked(collection, emb, query, 0.0)
    assert by_words[0].source == "zebra.md"  # BM25: the rarest word counts most
    assert by_vectors[0].source == "fox.md"  # cosine: most words shared
    dense = collection.search(emb.embed([query]), 3)[0]
    assert [h.id for h in by_vectors] == [h.id for h in dense]


def test_a_hybrid_hit_score_is_its_cosine_whatever_its_rank(live):
    collection, emb = live
    query = "the fox zebra"
    q = emb.embed([query])[0]
    for hit in ranked(collection, emb, query, 0.5, k=5):
        assert hit.score == pytest.approx(float(emb.embed([hit.text])[0] @ q), abs=1e-3)


def test_a_search_over_collections_takes_each_ones_best_rank_by_rank(tmp_path):
    for name, words in (("north", "ice snow cold"), ("south", "sand sun heat")):
        folder = tmp_path / name
        folder.mkdir()
        for i in range(4):
            (folder / f"{i}.md").write_text(f"{words} {' '.join(['x'] * i)} weather")
    specs = [CollectionSpec(n, [tmp_path / n], tmp_path / n) for n in ("north", "south")]
    retriever = Retriever(HashingEmbedder(), specs, tmp_path / "data", hybrid=False)
    retriever.start()
    hits = retriever.search(["ice snow cold weather"], 4)[0]
    assert [h.collection for h in hits] == ["north", "south", "north", "south"]
    ranks = [h.score for h in hits if h.collection == "north"]
    assert ranks == sorted(ranks, reverse=True)
    assert np.all([h.score >= 0.5 for h in hits if h.collection == "north"])
    only = retriever.search(["ice snow cold weather"], 4, min_score=0.5)[0]
    assert {h.collection for h in only} == {"north"} and len(only) == 4


def test_a_hit_holding_most_of_the_querys_rare_words_passes_min_score(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    long_text = " ".join(f"filler{i}" for i in range(40))  # one chunk, mostly filler
    (docs / "fact.md").write_text(f"{long_text} the lighthouse of vellmar was rebuilt")
    for i in range(6):
        (docs / f"other{i}.md").write_text(f"the weather of the harbour {i} was calm")
    spec = CollectionSpec("c", [docs], docs)
    question = "who rebuilt the lighthouse of vellmar"
    dense = Retriever(HashingEmbedder(), [spec], tmp_path / "dense", hybrid=False)
    hybrid = Retriever(HashingEmbedder(), [spec], tmp_path / "hybrid", hybrid=True)
    dense.start()
    hybrid.start()
    assert dense.search([question], 3, min_score=0.5)[0] == []
    hits = hybrid.search([question], 3, min_score=0.5)[0]
    assert [h.source for h in hits] == ["fact.md"]
    assert hits[0].score < 0.5 and hits[0].words >= 0.6
    # words most chunks hold are no evidence, however many of them match
    common = hybrid.search(["the of was"], 3, min_score=0.9)[0]
    assert common == [] and dense.search(["the of was"], 3)[0][0].words == 0.0


def test_interleave_keeps_each_lists_order_and_takes_rank_by_rank():
    from retrieval import interleave

    north = [{"id": "n1", "score": 0.2}, {"id": "n2", "score": 0.9}]  # a hybrid order
    south = [{"id": "s1", "score": 0.5}, {"id": "s2", "score": 0.4}, {"id": "s3", "score": 0.1}]
    merged = interleave([north, south], 10, lambda h: h["score"])
    # rank 0: s1 (0.5) before n1 (0.2); rank 1: n2 before s2; then s3
    assert [h["id"] for h in merged] == ["s1", "n1", "n2", "s2", "s3"]
    assert [h["id"] for h in interleave([north, south], 2, lambda h: h["score"])] == ["s1", "n1"]
    assert interleave([[], []], 3, lambda h: h["score"]) == []


def test_a_service_collection_opens_new_versions_off_the_search_path(tmp_path, monkeypatch):
    import threading

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "cats.md").write_text("Cats purr softly when they are content.")
    store, emb = CollectionStore(tmp_path / "data", "pets"), HashingEmbedder()
    ingest(store, emb, [docs], docs)
    live = LiveCollection(store, emb.identity(), check_every_s=0, background=True)
    live.open()
    (docs / "zebra.md").write_text("Zebras gallop across the plain.")
    ingest(store, emb, [docs], docs)
    opening, release = threading.Event(), threading.Event()
    slow_open = live._open

    def held_open(stored):  # a large index loading, or shards starting
        opening.set()
        release.wait(30)
        return slow_open(stored)

    monkeypatch.setattr(live, "_open", held_open)
    query = emb.embed(["zebras gallop"])
    first = live.search(query, 1)[0]  # starts the opening, answers from the old version
    assert opening.wait(10) and first[0].source == "cats.md"
    assert live.search(query, 1)[0][0].source == "cats.md"  # still serving while it opens
    release.set()
    for thread in [t for t in threading.enumerate() if t.name == "refresh"]:
        thread.join(30)  # the opening thread ends once the new version is swapped in
    assert live.current.name == "v000002"
    assert live.search(query, 1)[0][0].source == "zebra.md"
