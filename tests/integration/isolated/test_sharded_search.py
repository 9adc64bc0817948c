"""A collection sharded over Ray actors on a two-node Ray cluster (``ray.cluster_utils``,
started and stopped here): the shards spread over both nodes, and a query fanned out to
four of them returns the unsharded index's top 10."""

from __future__ import annotations

import gc
import time

import numpy as np
import pytest

from retrieval import indexes
from retrieval.shards import start_shards
from tests.unit.test_retrieval_indexes import clustered


@pytest.fixture(scope="module")
def two_nodes(shared_ray):
    import ray
    from ray.cluster_utils import Cluster

    shared_ray.release()  # this process joins the cluster below
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
    search = start_shards(index, plan, 4, num_cpus=0.5)
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


def _corpus(folder, count=60):
    folder.mkdir()
    topics = ["harbour", "orchard", "glacier", "market", "library", "railway"]
    for i in range(count):
        words = " ".join(f"{topics[(i + j) % 6]}{(i * 7 + j) % 13}" for j in range(12))
        (folder / f"page{i}.md").write_text(f"# Page {i}\n\nNotes on {words}.\n")


@pytest.mark.parametrize("search_kind", ["dense", "hybrid"])
def test_a_sharded_collection_answers_as_the_unsharded_one_and_follows_new_versions(
    two_nodes, tmp_path, search_kind
):
    import ray

    from retrieval import CollectionStore, LiveCollection, ingest
    from retrieval.build import IngestOptions
    from tests.helpers.documents import HashingEmbedder

    docs = tmp_path / "docs"
    _corpus(docs)
    store, emb = CollectionStore(tmp_path / "data", "notes"), HashingEmbedder()
    ingest(store, emb, [docs], docs, options=IngestOptions(index="flat"))
    whole = LiveCollection(store, emb.identity())
    sharded = LiveCollection(store, emb.identity(), check_every_s=0, shards=4,
                             shard_options={"num_cpus": 0.25})  # fmt: skip
    queries = [f"notes on harbour{i} glacier{i % 5}" for i in range(12)]
    texts = queries if search_kind == "hybrid" else None
    vectors = emb.embed(queries)
    version = sharded.open()
    assert version.index is None and len(set(version.shard_nodes())) == 2  # both nodes
    expected = [[h.id for h in hits] for hits in whole.search(vectors, 5, texts)]
    assert [[h.id for h in hits] for hits in sharded.search(vectors, 5, texts)] == expected

    # a shard lost (its process killed) is made again from its data, and the search retried
    lost = version.sharded.shards[0]
    ray.kill(lost)
    assert _all_dead([lost._actor_id.hex()])  # gone before the search, not during it
    assert [[h.id for h in hits] for hits in sharded.search(vectors, 5, texts)] == expected
    assert version.sharded.restarts == 1 and len(version.shard_nodes()) == 4

    # a new version: opened with shards of its own; the old version's shards stop
    (docs / "planted.md").write_text("The lighthouse keeper of vellmar is named Odalys.")
    ingest(store, emb, [docs], docs, options=IngestOptions(index="flat"))
    question = ["who keeps the lighthouse of vellmar"]
    hits = sharded.search(emb.embed(question), 3, question if texts else None)[0]
    assert sharded.current.name == "v000002" and "planted.md" in [h.source for h in hits]
    old = [shard._actor_id.hex() for shard in version.sharded.shards]
    del version
    gc.collect()
    assert _all_dead(old), "the old version's shard actors stop once nothing holds them"


def _all_dead(actor_ids, within_s=60.0):
    from ray.util.state import get_actor

    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        # an actor the state API does not know is not counted as dead: the ids must be real
        states = [getattr(get_actor(a), "state", "UNKNOWN") for a in actor_ids]
        if all(s == "DEAD" for s in states):
            return True
        time.sleep(0.5)  # polling Ray's state API for the condition, bounded above
    return False
