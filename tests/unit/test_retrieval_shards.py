import numpy as np
import pytest

from retrieval import indexes
from retrieval.shards import ShardedSearch, ShardSearcher, split, template_of
from tests.unit.test_retrieval_indexes import clustered


def sharded(index, plan, vectors, count):
    template = template_of(index, plan)
    shards = [
        ShardSearcher(template, plan.as_dict(), vectors[r], r) for r in split(len(vectors), count)
    ]
    return ShardedSearch(shards, plan, remote=False)


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
    scores, found = sharded(index, plan, vectors, 4).search(queries, 10)
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
        template_of(indexes.build(vectors, plan), plan)
    with pytest.raises(ValueError, match="0 shards"):
        split(10, 0)
    assert [list(r) for r in split(5, 2)] == [[0, 2, 4], [1, 3]]
