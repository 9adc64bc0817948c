import numpy as np
import pytest

from retrieval import indexes


def clustered(n, dim, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(64, dim))
    x = centres[rng.integers(0, 64, n)] + 0.6 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_index_kind_follows_size_unless_named():
    assert indexes.choose(5_000, 384).kind == "flat"
    assert indexes.choose(500_000, 384).kind == "hnsw"
    big = indexes.choose(5_000_000, 384)
    assert big.kind == "ivfpq" and big.factory.startswith("IVF8192_HNSW32,PQ48x8")
    assert indexes.choose(10, 384, "hnsw").kind == "hnsw"
    with pytest.raises(ValueError, match="divisible by 8"):
        indexes.choose(10, 30, "ivfpq")


@pytest.mark.parametrize(("kind", "param"), [("hnsw", "efSearch"), ("ivfpq", "nprobe")])
def test_search_parameter_is_the_smallest_that_reaches_the_target(kind, param):
    vectors = clustered(12_000, 32)
    plan = indexes.choose(len(vectors), 32, kind)
    index = indexes.build(vectors, plan)
    indexes.tune(index, plan, vectors, 0.9)
    assert plan.recall_at_10 >= 0.9 and param in plan.params
    steps = indexes.EF_STEPS if kind == "hnsw" else indexes.NPROBE_STEPS
    smaller = steps[max(steps.index(plan.params[param]) - 1, 0)]
    if smaller != plan.params[param]:
        low = indexes.IndexPlan(kind, plan.factory, {**plan.params, param: smaller})
        indexes.apply(index, low)
        queries, ids, truth = indexes.held_out(vectors)
        _, found = index.search(queries, 11)
        assert indexes.recall_at_10(indexes._without_self(found, ids), truth) < 0.9


def test_recall_counts_shared_ids():
    truth = np.array([list(range(10))])
    assert indexes.recall_at_10(np.array([list(range(5)) + [-1] * 5]), truth) == 0.5
    assert indexes.recall_at_10(np.array([list(range(10))[::-1]]), truth) == 1.0


def test_ivfpq_refuses_too_few_vectors_to_train():
    plan = indexes.choose(100, 32, "ivfpq")
    with pytest.raises(ValueError, match="needs at least"):
        indexes.build(clustered(100, 32), plan)
