"""mixserve on a real multi-node Ray cluster, and the faults a cluster has.

A head node and two worker nodes, each started by ``cluster.yaml``'s own ``ray start``
command (``tests/helpers/cluster.py``), with the node resources the launcher config
declares: ``cpu_node`` on the head (gateway, router, retriever), ``gpu_small`` on the
workers (specialists; ``code`` asks for 0.6 of it per replica, so its two replicas sit on
different workers). Deployed first with Ray's own ``serve deploy`` of the config
``mixserve build serve-config`` writes, then updated and rolled back with
``mixserve deploy`` / ``mixserve rollback``. One request's trace is followed across the
nodes. Under load from the harness, each fault reports requests sent, succeeded, retried
and failed.

Engines are the fake (the test is about placement, Serve and the gateway; the e2e tier
kills the real engine's replica). Serve's HTTP proxy runs on the head only: the nodes
share one machine, and proxies on every node would bind one port.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from loadgen.run import LoadSpec
from orchestrator.config import AuthConfig, MixserveConfig, Resources, with_specialists
from orchestrator.runtime import free_port
from orchestrator.runtime.embedded_redis import start_redis
from orchestrator.runtime.procs import stop_run
from orchestrator.versions import config_versions
from tests.helpers.cli import require_prepared_models, run_mixserve
from tests.helpers.cluster import LocalCluster
from tests.helpers.faults import WORDS, Load, long_questions, replica_pids, report, wait_for
from tests.helpers.fleet import fake_config
from tests.helpers.waits import wait_trace

CODE = "specialist-code"
TIMEOUT_S = 60.0


def placed(resources: Resources, **custom: float) -> Resources:
    return resources.model_copy(update={"custom": custom})


def cluster_config(port: int, code_prompt: str = "") -> MixserveConfig:
    cfg = fake_config()
    specialists = []
    for s in cfg.specialists:
        if s.name == "code":
            s = s.model_copy(
                update={
                    "replicas": 2,
                    "max_ongoing_requests": 8,
                    "max_queued_requests": 16,
                    "system_prompt": code_prompt or s.system_prompt,
                    # each worker holds one code replica and no room for a second: an
                    # update stops one old replica at a time (the other serves) rather
                    # than starting new ones beside them
                    "rollout_surge_percent": 0,
                    "resources": placed(s.resources, gpu_small=0.6),
                }
            )
        else:
            s = s.model_copy(update={"resources": placed(s.resources, gpu_small=0.3)})
        specialists.append(s)
    gateway = cfg.gateway.model_copy(
        update={
            "port": port,
            "proxy_location": "HeadOnly",
            "request_timeout_s": TIMEOUT_S,
            "resources": Resources(num_cpus=0.1, custom={"cpu_node": 0.01}),
        }
    )
    changed = cfg.model_copy(
        update={
            "gateway": gateway,
            "auth": AuthConfig(enabled=False),
            "router": cfg.router.model_copy(
                update={"resources": placed(cfg.router.resources, cpu_node=0.01)}
            ),
            "retrieval": cfg.retrieval.model_copy(
                update={"resources": placed(cfg.retrieval.resources, cpu_node=0.01)}
            ),
        }
    )
    return with_specialists(changed, specialists)


@dataclass
class Deployed:
    cluster: LocalCluster
    env: dict[str, str]
    url: str
    folder: Path
    port: int
    name: str

    def cli(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return run_mixserve(*args, env=self.env, timeout=timeout)

    def write_config(self, file: str, cfg: MixserveConfig) -> Path:
        path = self.folder / file
        path.write_text(yaml.safe_dump(cfg.written(), sort_keys=False))
        return path

    def status(self) -> dict[str, Any]:
        proc = self.cli("status", "--app", self.name, "--url", self.url, "--json", timeout=120)
        assert proc.returncode in (0, 1), proc.stderr
        return dict(json.loads(proc.stdout))

    def load(self, duration_s: float = 20, retries: int = 0) -> Load:
        spec = LoadSpec(
            url=self.url,
            clients=6,
            duration_s=duration_s,
            model="code",
            max_tokens=64,
            temperature=0.5,
            timeout_s=TIMEOUT_S,
            client_retries=retries,
        )
        return Load(spec, long_questions("Write a Python function"))


def code_nodes(status: dict[str, Any]) -> dict[str, int]:
    rows = [d for d in status["deployments"] if d["deployment"] == CODE]
    assert len(rows) == 1, status["deployments"]
    return dict(rows[0]["replicas_by_node"])


def running_version(status: dict[str, Any], name: str) -> str | None:
    return next(s["running_version"] for s in status["specialists"] if s["name"] == name)


def replica_pids_via_cli(run: Deployed) -> list[str]:
    """The engine replicas' ids, as `mixserve status` reads them from the dashboard."""
    from orchestrator.runtime.deploy import serve_details

    details = serve_details(run.cluster.dashboard)
    app = details["applications"][f"{run.name}-engine-gemma"]
    return [r["replica_id"] for r in app["deployments"]["engine-gemma"]["replicas"]]


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def deployed(tmp_path_factory, shared_ray):
    import ray

    require_prepared_models()
    shared_ray.release()  # this process joins the cluster below, whose nodes inherit its env
    folder = tmp_path_factory.mktemp("cluster")
    cluster = LocalCluster(f"cf{uuid.uuid4().hex[:8]}")
    redis = start_redis(folder / "redis")
    port = free_port()
    cfg = cluster_config(port)
    run = Deployed(
        cluster,
        {
            "RAY_ADDRESS": cluster.address,
            "RAY_DASHBOARD_ADDRESS": cluster.dashboard,
            "REDIS_URL": redis.url,
            "MIXSERVE_STATE_DIR": str(folder / "state"),
        },
        f"http://127.0.0.1:{port}",
        folder,
        port,
        cfg.name,
    )
    saved: dict[str, str | None] = {}
    try:
        cluster.start_head(cpus=2, resources={"cpu_node": 1})
        cluster.add_worker("w1", cpus=2, resources={"gpu_small": 1})
        cluster.add_worker("w2", cpus=2, resources={"gpu_small": 1})
        run.env.update(cluster.env)  # the launcher's RAY_AUTH_MODE=token, for every client
        saved = {k: os.environ.get(k) for k in cluster.env}  # put back at the end
        cluster.connect()
        config_file = run.write_config("v1.yaml", cfg)
        serve_yaml = folder / "serve.yaml"
        built = run.cli(
            "build", "serve-config", "--config", str(config_file), "--out", str(serve_yaml)
        )
        assert built.returncode == 0, built.stderr
        serve = str(Path(sys.executable).parent / "serve")
        deploy = subprocess.run(
            [serve, "deploy", str(serve_yaml), "-a", cluster.dashboard],
            env={**os.environ, **run.env},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert deploy.returncode == 0, deploy.stderr[-3000:]
        wait_for("the service ready after serve deploy", lambda: ready(run.url), 600, 2)
        gemma = set(replica_pids_via_cli(run))
        # the same config through `mixserve deploy`: recorded as release 1, and nothing
        # restarts (Serve sees the config it runs)
        again = run.cli("deploy", "--config", str(config_file), "--timeout", "300")
        assert again.returncode == 0, again.stderr[-3000:]
        assert "release 1 of mixserve" in again.stdout
        assert set(replica_pids_via_cli(run)) == gemma
        yield run
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.stop()
        stop_run(f"deploy-{cfg.name}")  # replicas carry the deployed run's marker
        redis.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        from ray._raylet import Config

        Config.initialize("")  # the next test's Ray starts with this process's own mode


def test_serve_deploy_places_each_part_on_its_kind_of_node(deployed):
    status = wait_for(
        "two code replicas running",
        lambda: (s := deployed.status()) and sum(code_nodes(s).values()) == 2 and s,
        120,
        2,
    )
    assert status["ready"] is True, status
    assert len(code_nodes(status)) == 2  # one replica on each worker
    worker_ips = {d["deployment"]: d["replicas_by_node"] for d in status["deployments"]}
    assert set(worker_ips) >= {"gateway", "router", "retriever-docs", CODE, "engine-gemma"}
    assert sum(worker_ips["gateway"].values()) == 2  # two gateways by default
    nodes = {n["NodeID"]: n["Resources"] for n in deployed.cluster.alive_nodes()}
    assert len(nodes) == 3
    head = next(node for node, res in nodes.items() if "cpu_node" in res)
    for part in ("gateway", "router", "retriever-docs"):  # cpu_node: all on the head
        assert all(f"({head[:8]})" in key for key in worker_ips[part]), (part, worker_ips[part])
    workers = {node[:8] for node, res in nodes.items() if "gpu_small" in res}
    assert {key.split("(")[1].rstrip(")") for key in code_nodes(status)} == workers
    code = next(s for s in status["specialists"] if s["name"] == "code")
    assert code["running_version"] == code["version"]


def test_a_trace_spans_two_nodes(deployed):
    """One request's trace across nodes: the router on the head node, the specialist on a
    worker node (its own raylet), joined by the traceparent carried in call arguments."""
    body = {
        "model": "auto",
        "messages": [{"role": "user", "content": "What is 12 times 7?"}],
        "max_tokens": 4,
        "temperature": 0.5,
    }
    with httpx.Client(base_url=deployed.url, timeout=120) as client:
        answer = client.post("/v1/chat/completions", json=body).json()
        rid = answer["mixserve"]["request_id"]
        trace = wait_trace(client, rid, lambda names: "mixserve.specialist.generate" in names, 30)
    nodes = {n["NodeID"]: n["Resources"] for n in deployed.cluster.alive_nodes()}
    spans = trace["spans"]
    by_name = {s["name"]: s for s in spans}
    assert {s["trace_id"] for s in spans} == {trace["trace_id"]}
    head = next(n for n, res in nodes.items() if "cpu_node" in res)
    workers = {n for n, res in nodes.items() if "gpu_small" in res}
    generate = by_name["mixserve.specialist.generate"]
    route = by_name["mixserve.router.route"]
    assert generate["attributes"]["mixserve.node"] in workers
    assert route["attributes"]["mixserve.node"] == head
    specialist = answer["model"]
    call = by_name[f"chat {specialist}"]
    assert generate["parent_id"] == call["span_id"] and call["component"] == "gateway"
    assert call["parent_id"] == by_name["chat auto"]["span_id"]


def test_a_killed_specialist_replica_on_a_worker_costs_no_request(deployed):
    victim = sorted(replica_pids(CODE).values())[0]

    def replaced() -> bool:
        pids = replica_pids(CODE).values()
        return victim not in pids and len(pids) == 2

    with deployed.load() as load:
        load.wait_answered(12)
        os.kill(victim, signal.SIGKILL)
        # the load goes on until the replica is replaced and 12 more requests have ended
        load.finish_when("the code replica replaced", replaced, then=12)
        outcomes = load.outcomes()
    summary = report("cluster: specialist replica SIGKILL", outcomes)
    assert summary["failed"] == 0 and summary["retried_by_client"] == 0, summary
    assert {o.output_tokens for o in outcomes} == {WORDS + 1}  # every answer whole
    wait_for("code back to two replicas", lambda: len(replica_pids(CODE)) == 2, 180, 2)


def test_a_rolling_update_of_one_specialist_fails_no_request(deployed):
    new = cluster_config(deployed.port, code_prompt="You write careful, tested code.")
    path = deployed.write_config("v2.yaml", new)
    gemma_before = set(replica_pids("engine-gemma"))
    with deployed.load(duration_s=45) as load:
        load.wait_answered(6)
        proc = deployed.cli("deploy", "--config", str(path), "--timeout", "600")
        load.finish_after(12)  # requests on the updated specialist too
        outcomes = load.outcomes()
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = report("cluster: rolling update of code", outcomes)
    assert summary["failed"] == 0 and summary["retried_by_client"] == 0, summary
    status = deployed.status()
    version = config_versions(new)["code"]
    assert running_version(status, "code") == version
    assert "code:" in proc.stdout and version in proc.stdout
    # the other engine's application did not change: its replica kept running
    assert set(replica_pids("engine-gemma")) == gemma_before


def test_rollback_returns_to_the_previous_version_under_load(deployed):
    with deployed.load(duration_s=40) as load:
        load.wait_answered(6)
        proc = deployed.cli("rollback", "--app", deployed.name, "--timeout", "600")
        load.finish_after(12)  # requests on the version rolled back to too
        outcomes = load.outcomes()
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = report("cluster: rollback of code", outcomes)
    assert summary["failed"] == 0 and summary["retried_by_client"] == 0, summary
    first = config_versions(cluster_config(deployed.port))["code"]
    assert running_version(deployed.status(), "code") == first


def test_a_killed_gateway_replica_leaves_the_other_serving(deployed):
    gateways = replica_pids("gateway")
    assert len(gateways) == 2
    victim_id, victim = sorted(gateways.items())[0]

    def replaced() -> bool:
        found = replica_pids("gateway")
        return victim_id not in found and len(found) == 2

    # clients retry as the OpenAI SDKs do (max_retries 2): what was in flight on the
    # killed gateway (Serve's proxy answers it 500, or the connection drops) is sent
    # again and answered by the other
    with deployed.load(retries=2) as load:
        load.wait_answered(12)
        os.kill(victim, signal.SIGKILL)
        load.finish_when("the gateway replaced", replaced, then=12)
        outcomes = load.outcomes()
    summary = report("cluster: gateway replica SIGKILL", outcomes)
    assert summary["failed"] == 0, summary
    after = [o for o in outcomes if o.started > outcomes[len(outcomes) // 2].started]
    assert after and all(o.answered for o in after)  # the survivor kept serving
    assert wait_for("the gateway replaced", replaced, 180, 2)


def test_a_stopped_worker_node_leaves_the_service_answering_and_rejoins(deployed):
    before = code_nodes(deployed.status())
    assert len(before) == 2
    with deployed.load(duration_s=30) as load:
        load.wait_answered(12)
        killed = deployed.cluster.kill_node("w1")
        load.finish_when(
            "the node seen dead", lambda: len(deployed.cluster.alive_nodes()) == 2, then=12
        )
        outcomes = load.outcomes()
    assert killed
    summary = report("cluster: worker node stopped", outcomes)
    assert summary["failed"] == 0 and summary["retried_by_client"] == 0, summary
    assert {o.output_tokens for o in outcomes} == {WORDS + 1}
    wait_for("the node seen dead", lambda: len(deployed.cluster.alive_nodes()) == 2, 120, 2)
    deployed.cluster.restart_node("w1")
    rebalanced = wait_for(
        "code's replicas on two nodes again",
        lambda: len(code_nodes(deployed.status())) == 2,
        300,
        3,
    )
    assert rebalanced
    assert ready(deployed.url)
