import numpy as np
import pytest

from retrieval import indexes
from retrieval.shards import ShardedSearch, ShardSearcher, parts, split
from tests.unit.test_retrieval_indexes import clustered


def sharded(index, plan, count):
    shards = [ShardSearcher(data, plan.as_dict(), rows) for data, rows in parts(index, plan, count)]
    return ShardedSearch(shards, plan, remote=False)


@pytest.mark.parametrize("kind", ["flat", "ivfpq"])
def test_shards_hold_the_whole_indexs_own_codes_not_new_ones(kind):
    """A served collection keeps float16 vectors beside its index: shards made from those
    would encode some rows differently; they are copied out of the index instead."""
    vectors = clustered(5_000, 32)
    plan = indexes.choose(len(vectors), 32, kind)
    index = indexes.build(vectors, plan)
    indexes.tune(index, plan, vectors, 0.9)
    queries = vectors[:200] + 1e-3  # near-exact ties everywhere: any re-encoding shows
    rounded = vectors.astype(np.float16).astype(np.float32)
    whole_from_rounded = indexes.build(rounded, plan)
    indexes.apply(whole_from_rounded, plan)
    expected_s, expected = indexes.search(index, queries, 10)
    scores, found = sharded(index, plan, 3).search(queries, 10)
    assert (found == expected).all() and np.array_equal(scores, expected_s)
    # what shards built from the stored float16 vectors would have scored: not the same
    assert not np.array_equal(indexes.search(whole_from_rounded, queries, 10)[0], expected_s)
    assert sum(p.size() for p in sharded(index, plan, 3).shards) == len(vectors)


@pytest.mark.parametrize("kind", ["flat", "ivfpq"])
@pytest.mark.parametrize("duplicates", [False, True])
def test_four_shards_return_the_unsharded_top_10(kind, duplicates):
    vectors = clustered(20_000, 32)
    if duplicates:  # exact ties in both stages: broken by row number everywhere
        vectors[1::5] = vectors[0::5]
    queries = clustered(300, 32, seed=5)
    plan = indexes.choose(len(vectors), 32, kind)
    index = indexes.build(vectors, plan)
    indexes.tune(index, plan, vectors, 0.9)
    _, expected = indexes.search(index, queries, 10)
    scores, found = sharded(index, plan, 4).search(queries, 10)
    assert (found == expected).all()
    assert (np.diff(scores, axis=1) <= 0).all()  # best first


def test_ivfpq_search_in_two_stages_finds_what_faiss_refine_finds():
    vectors = clustered(20_000, 32)
    queries = clustered(300, 32, seed=5)
    plan = indexes.choose(len(vectors), 32, "ivfpq")
    index = indexes.build(vectors, plan)
    indexes.tune(index, plan, vectors, 0.9)
    _, ours = indexes.search(index, queries, 10)
    _, faiss_own = index.search(queries, 10)
    assert indexes.recall_at_10(ours, faiss_own) >= 0.99


def test_hnsw_is_not_sharded_and_shard_counts_are_checked():
    vectors = clustered(500, 16)
    plan = indexes.choose(len(vectors), 16, "hnsw")
    with pytest.raises(ValueError, match="cannot be sharded"):
        next(parts(indexes.build(vectors, plan), plan, 2))
    with pytest.raises(ValueError, match="0 shards"):
        split(10, 0)
    assert [list(r) for r in split(5, 2)] == [[0, 2, 4], [1, 3]]
