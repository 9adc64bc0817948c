"""`mixserve index build --workers 2` on a two-node Ray cluster (``ray.cluster_utils``,
started and stopped here): the embedding is dealt to actors on both nodes, and the
collection is the one a build in one process makes (the same chunks, the same vectors
up to int8 rounding)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from orchestrator import profiles
from tests.helpers.cli import run_mixserve


@pytest.fixture(scope="module")
def two_nodes(shared_ray):
    from ray.cluster_utils import Cluster

    shared_ray.release()  # the nodes below inherit this process's environment
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    cluster.add_node(num_cpus=2)
    try:
        yield cluster
    finally:
        cluster.shutdown()


def build(data, *extra, env=None):
    corpus = profiles.FOLDER / "corpus"
    proc = run_mixserve(
        "index", "build", "--collection", "guide", str(corpus), "--root", str(corpus),
        "--data-dir", str(data), "--json", *extra, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def stored(data):
    folder = data / "guide"
    version = folder / "versions" / (folder / "CURRENT").read_text().strip()
    return np.load(version / "vectors.npy").astype(np.float32)


def test_build_embeds_on_both_nodes_and_matches_a_local_build(two_nodes, tmp_path):
    spread = build(tmp_path / "spread", "--workers", "2", env={"RAY_ADDRESS": two_nodes.address})
    local = build(tmp_path / "local")
    workers = spread["workers"]
    assert len({w["node"] for w in workers}) == 2, "SPREAD puts a worker on each node"
    assert all(w["texts"] > 0 for w in workers)
    assert sum(w["texts"] for w in workers) == spread["embedded"] == local["embedded"] > 10
    assert spread["chunks"] == local["chunks"]
    a, b = stored(tmp_path / "spread"), stored(tmp_path / "local")
    assert a.shape == b.shape
    assert float(np.min(np.sum(a * b, axis=1))) > 0.995


def test_workers_out_of_range_are_refused_in_one_line(tmp_path):
    proc = run_mixserve(
        "index", "build", "--collection", "x", str(profiles.FOLDER / "corpus"),
        "--data-dir", str(tmp_path), "--workers", "-1",
    )  # fmt: skip
    assert proc.returncode == 2 and "--workers takes 0 to 256" in proc.stderr
