"""Serve the app on a two-node local Ray cluster and print one request's trace as JSON.

Run in its own process by ``test_multinode_trace.py`` (a pytest process is already
connected to the package's Ray). The head node carries the router and retriever, a
second node (its own raylet and object store) the specialists, placed there by a custom
resource; both nodes are stopped by their process handles at the end, and the run's
workers swept by its marker, as ``mixserve down`` does.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import httpx

from orchestrator.config import AuthConfig, Resources
from orchestrator.runtime.embedded_redis import free_port
from orchestrator.settings import get_settings
from tests.helpers.fleet import fake_config
from tests.helpers.waits import wait_trace


def placed(resources: Resources, where: str) -> Resources:
    return resources.model_copy(update={"custom": {where: 0.01}})


def main(state_dir: Path) -> None:
    import ray
    from ray.cluster_utils import Cluster

    from orchestrator.runtime import ServiceRun, serve_env

    # Both nodes run on this one machine: HAProxy on each would bind the same ports, so
    # this cluster runs Serve's Python proxy (a cluster of real machines can run both)
    for name in serve_env(0):
        os.environ.pop(name, None)
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 4, "resources": {"head_node": 1}},
    )
    cluster.add_node(num_cpus=4, resources={"second_node": 1})
    cluster.wait_for_nodes()
    cfg = fake_config()
    cfg = cfg.model_copy(
        update={
            "auth": AuthConfig(enabled=False),
            "gateway": cfg.gateway.model_copy(update={"proxy_location": "HeadOnly"}),
            "router": cfg.router.model_copy(
                update={"resources": placed(cfg.router.resources, "head_node")}
            ),
            "retrieval": cfg.retrieval.model_copy(
                update={"resources": placed(cfg.retrieval.resources, "head_node")}
            ),
            "specialists": [
                s.model_copy(update={"resources": placed(s.resources, "second_node")})
                for s in cfg.specialists
            ],
        }
    )
    settings = dataclasses.replace(
        get_settings(), redis_url=None, ray_address=cluster.address, state_dir=state_dir
    )
    deployment = ServiceRun(cfg, settings, port=free_port(), state_file=settings.state_file)
    try:
        deployment.start(ready_timeout_s=600)
        body = {
            "model": "auto",
            "messages": [{"role": "user", "content": "What is 12 times 7?"}],
            "max_tokens": 4,
            "temperature": 0.5,
        }
        with httpx.Client(base_url=deployment.url, timeout=120) as client:
            answer = client.post("/v1/chat/completions", json=body).json()
            rid = answer["mixserve"]["request_id"]
            trace = wait_trace(
                client, rid, lambda names: "mixserve.specialist.generate" in names, 30
            )
        nodes = {n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}
        print(json.dumps({"answer": answer, "trace": trace, "nodes": nodes}))
    finally:
        deployment.stop()
        ray.shutdown()  # the driver lets go of the head before its node is stopped
        cluster.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
