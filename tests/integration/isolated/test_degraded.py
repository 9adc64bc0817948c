"""A router and a retriever that do not answer within their timeouts, on a service of its
own: every request is still answered, sent to the router's fallback and without
passages, and says so in its routing, its trace and the `mixserve_degraded` count.

The timeouts (1 ms) are shorter than any real call to either deployment can take (the
router runs an LLM forward pass, the retriever an embedding and a FAISS search)."""

from __future__ import annotations

import time

import httpx
import pytest
import ray

from orchestrator.config import MixserveConfig
from tests.helpers.fleet import fake_fleet
from tests.helpers.http import auth, chat


def _slow_parts(config: MixserveConfig) -> MixserveConfig:
    return config.model_copy(
        update={
            "router": config.router.model_copy(update={"timeout_s": 0.001}),
            "retrieval": config.retrieval.model_copy(update={"timeout_s": 0.001}),
        }
    )


@pytest.fixture(scope="module")
def service(tmp_path_factory, shared_ray):
    with fake_fleet(
        tmp_path_factory.mktemp("state"), tmp_path_factory.mktemp("r"), _slow_parts, ray=shared_ray
    ) as run:
        yield run


def _trace(client: httpx.Client, request_id: str, names: set[str]) -> dict[str, dict]:
    """The request's spans by name, once every one of ``names`` has been exported."""
    deadline = time.monotonic() + 30
    spans: dict[str, dict] = {}
    while time.monotonic() < deadline:
        resp = client.get(f"/v1/traces/{request_id}")
        if resp.status_code == 200:
            spans = {s["name"]: s for s in resp.json()["spans"]}
            if names <= spans.keys():
                return spans
        time.sleep(0.2)
    raise AssertionError(f"spans {sorted(names - spans.keys())} never exported")


def _degraded_count(part: str) -> float:
    """``mixserve_degraded`` of ``part`` in Ray's Prometheus export."""
    port = ray.nodes()[0]["MetricsExportPort"]
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("ray_mixserve_degraded") and f'part="{part}"' in line
    )


def test_slow_router_and_retriever_degrade_the_answer_instead_of_failing_it(service):
    fallback = service.config.router.fallback
    with httpx.Client(base_url=service.url, timeout=60, headers=auth(service)) as client:
        before = {p: _degraded_count(p) for p in ("router", "retriever")}
        started = time.monotonic()
        resp = chat(client, "How do I reverse a list in Python?", max_tokens=8)
        took = time.monotonic() - started
        assert resp.status_code == 200, resp.text
        body = resp.json()
        routing = body["mixserve"]["routing"]
        assert routing["degraded"] is True
        assert routing["choice"] == fallback == body["mixserve"]["specialist"]
        assert routing["reason"].startswith("router unavailable (timed out)")
        assert routing["retrieval"] == "retriever-docs timed out"
        assert body["mixserve"]["sources"] == []
        assert body["choices"][0]["message"]["content"]
        assert took < service.config.gateway.request_timeout_s

        spans = _trace(client, body["mixserve"]["request_id"], {"mixserve.routing"})
        assert spans["mixserve.routing"]["attributes"]["mixserve.degraded"] == "router timed out"
        assert spans["mixserve.retrieval"]["attributes"]["mixserve.degraded"] == (
            "retriever-docs timed out"
        )

        deadline = time.monotonic() + 90  # Ray reports metrics every few seconds
        while time.monotonic() < deadline:
            after = {p: _degraded_count(p) for p in ("router", "retriever")}
            if all(after[p] > before[p] for p in after):
                break
            time.sleep(3)
        assert all(after[p] > before[p] for p in after), (before, after)
