"""A collection sharded over Ray actors on a two-node Ray cluster (``ray.cluster_utils``,
started and stopped here): the shards spread over both nodes, and a query fanned out to
four of them returns the unsharded index's top 10."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval import indexes
from retrieval.shards import start_shards
from tests.unit.test_retrieval_indexes import clustered


@pytest.fixture(scope="module")
def two_nodes():
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    cluster.add_node(num_cpus=2)
    ray.init(address=cluster.address)
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.mark.parametrize("kind", ["flat", "ivfpq"])
def test_sharded_top_10_is_the_unsharded_one_across_nodes(two_nodes, kind):
    import ray

    vectors = clustered(20_000, 32)
    queries = clustered(100, 32, seed=9)
    plan = indexes.choose(len(vectors), 32, kind)
    index = indexes.build(vectors, plan)
    indexes.tune(index, plan, vectors, 0.9)
    _, expected = indexes.search(index, queries, 10)
    search = start_shards(index, plan, vectors, 4, num_cpus=0.5)
    try:
        nodes = set(ray.get([s.node_id.remote() for s in search.shards]))
        assert len(nodes) == 2, "SPREAD places the four shards on both nodes"
        assert sum(ray.get([s.size.remote() for s in search.shards])) == len(vectors)
        scores, found = search.search(queries, 10)
        assert (found == expected).all() and np.isfinite(scores).all()
        _, one = search.search(queries[:1], 10)
        assert (one == expected[:1]).all()
    finally:
        for shard in search.shards:
            ray.kill(shard)
