"""The specialists' replica router on a real Serve deployment: `code` with two replicas
of the fake engine and `routing.policy: engine_load`. A conversation's shared prefix
keeps going to one replica while load is even; past the imbalance threshold it goes to
the other; distinct prompts spread over both; replicas report their engine's load."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from orchestrator.config import ReplicaRouting, Resources
from tests.helpers.fleet import both, fake_fleet, gateway_changed, specialist_changed
from tests.helpers.http import auth
from tests.helpers.waits import wait_trace

GENERATE = "mixserve.specialist.generate"


TWO_CODE_REPLICAS = specialist_changed(
    "code",
    replicas=2,
    max_ongoing_requests=4,
    max_queued_requests=4,
    resources=Resources(num_cpus=0.1),
    routing=ReplicaRouting(imbalance_threshold=1.0, stats_period_s=0.5),
)


@pytest.fixture(scope="module")
def service(tmp_path_factory, shared_ray):
    with fake_fleet(
        tmp_path_factory.mktemp("state"),
        tmp_path_factory.mktemp("r"),
        # one gateway replica: each remembers the prefixes it routed on its own
        both(gateway_changed(replicas=1), TWO_CODE_REPLICAS),
        ray=shared_ray,
    ) as run:
        yield run


def conversation(topic: str, question: str) -> list[dict[str, str]]:
    return [
        {"role": "user", "content": f"Here is my project: {topic}."},
        {"role": "assistant", "content": "Understood."},
        {"role": "user", "content": question},
    ]


def replica_of(client: httpx.Client, resp: httpx.Response | str) -> str:
    """The replica that generated a response (or the request of that id), from its trace."""
    if isinstance(resp, str):
        rid = resp
    else:
        assert resp.status_code == 200, resp.text
        rid = resp.json()["mixserve"]["request_id"]
    trace = wait_trace(client, rid, lambda names: GENERATE in names)
    span = next(s for s in trace["spans"] if s["name"] == GENERATE)
    return str(span["attributes"]["mixserve.replica"])


def ask(client: httpx.Client, messages: list[dict[str, str]], max_tokens: int = 4):
    body = {"model": "code", "messages": messages, "max_tokens": max_tokens, "temperature": 0.5}
    return client.post("/v1/chat/completions", json=body)


def test_a_shared_prefix_stays_on_one_replica_while_load_is_even(service):
    with httpx.Client(base_url=service.url, timeout=60, headers=auth(service)) as c:
        home = {
            replica_of(c, ask(c, conversation("a parser in Rust", f"Step {i}?"))) for i in range(8)
        }
        spread = {
            replica_of(c, ask(c, conversation(f"project number {i}", "What next?")))
            for i in range(16)
        }
    assert len(home) == 1, home  # one conversation, one replica: its prefix cache
    assert len(spread) == 2, spread  # distinct prompts: both replicas (power of two)


def test_affinity_yields_to_load_past_the_imbalance_threshold(service):
    topic = "a web crawler in Go"
    long_ask = " ".join(f"part{i}" for i in range(150))  # the fake echoes: ~3 s of answer
    with httpx.Client(base_url=service.url, timeout=60, headers=auth(service)) as c:
        home = replica_of(c, ask(c, conversation(topic, "Where do I start?")))

        def filler(i: int, under_way: threading.Event) -> str:
            rid = f"filler-{i}-{time.monotonic_ns()}"
            body = {
                "model": "code",
                "messages": conversation(topic, f"{long_ask} {i}"),
                "max_tokens": 150,
                "temperature": 0.5,
                "stream": True,
            }
            headers = {**auth(service), "x-request-id": rid}
            with httpx.Client(base_url=service.url, timeout=60, headers=headers) as f:
                with f.stream("POST", "/v1/chat/completions", json=body) as resp:
                    assert resp.status_code == 200
                    for line in resp.iter_lines():
                        if line.startswith("data: "):
                            under_way.set()  # its first token: it runs on its replica
            return rid

        with ThreadPoolExecutor(3) as pool:
            fillers = []
            for i in range(3):  # one at a time, each generating before the next is sent
                under_way = threading.Event()
                fillers.append(pool.submit(filler, i, under_way))
                assert under_way.wait(30), f"filler {i} never started"
            replicas = [replica_of(c, f.result()) for f in fillers]
    # home takes the first two (load 0, then 1 above the other: within the threshold of
    # 1); the third would put it 2 above, so it goes to the other replica
    assert replicas[:2] == [home, home] and replicas[2] != home, (home, replicas)


def test_each_replica_reports_its_engine_load(service):
    from ray import serve

    from orchestrator.app import engine_app

    app = engine_app("mixserve", "specialist-code")  # each engine: an application of its own
    handle = serve.get_deployment_handle("specialist-code", app_name=app)

    async def stats_now() -> dict:
        # awaited in a loop of its own: a sync ``.result()`` works only where the driver's
        # Serve runs its router on a separate loop, which depends on the order tests ran in
        return await asyncio.wait_for(handle.record_routing_stats.remote(), 30)

    stats = asyncio.run(stats_now())
    assert set(stats) >= {"running", "waiting", "kv_cache_usage", "in_flight"}
    assert stats["running"] == stats["in_flight"] == 0  # idle now
