"""mixserve's metrics reach Ray's Prometheus export (what the Ray dashboard charts)."""

from __future__ import annotations

import time

import httpx
import ray

from tests.helpers.http import chat

WANTED = (
    "ray_mixserve_requests_total",
    "ray_mixserve_tokens_total",
    "ray_mixserve_request_latency_s_bucket",
    "ray_mixserve_time_to_first_token_s_bucket",
    "ray_mixserve_routing_decisions_total",
    "ray_mixserve_answer_methods_total",
)


def test_request_metrics_appear_in_rays_prometheus_export(client):
    for _ in range(2):
        assert chat(client, "What is 2 times 9?", temperature=0.5).status_code == 200
    port = ray.nodes()[0]["MetricsExportPort"]
    deadline = time.monotonic() + 90  # Ray reports metrics every few seconds
    while True:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        lines = [ln for ln in text.splitlines() if ln.startswith("ray_mixserve_")]
        missing = [name for name in WANTED if not any(ln.startswith(name) for ln in lines)]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert not missing, f"not exported: {missing}"
    requests = [ln for ln in lines if ln.startswith("ray_mixserve_requests_total")]
    assert any('specialist="math"' in ln and 'outcome="ok"' in ln for ln in requests), requests
    assert any('deployment="gateway"' in ln for ln in requests)  # Serve's tags ride along
    methods = [ln for ln in lines if ln.startswith("ray_mixserve_answer_methods_total")]
    assert any('specialist="math"' in ln and 'method="symbolic"' in ln for ln in methods)
