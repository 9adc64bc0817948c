"""Span exporters against real services: the Redis trace store (bounded, per tenant) and
OTLP over HTTP and gRPC to a receiver decoding the protobuf schema."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

from orchestrator.errors import APIError
from orchestrator.redis_clients import async_client
from orchestrator.telemetry.export import RedisSpanExporter
from orchestrator.telemetry.request_trace import RequestTrace
from orchestrator.telemetry.trace_store import stored_trace
from orchestrator.telemetry.tracing import TraceOptions, Tracing, carrier
from tests.helpers.otlp_receiver import grpc_receiver, http_receiver


def one_request(tracing: Tracing, worker: Tracing, tenant: str, rid: str) -> str:
    """A root in the 'gateway' with a child made by another process's tracer."""
    trace = RequestTrace(tracing, "chat", rid, "/v1/chat/completions")
    trace.caller(tenant, None)
    with trace.child("mixserve.routing") as call:
        with worker.span("mixserve.router.route", carrier(call)):
            pass
    trace.end(200)
    return trace.trace_id


def read(url: str, tenant: str, rid: str) -> dict:
    async def go() -> dict:
        client = async_client(url)
        try:
            return await stored_trace(client, tenant, rid)
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_stored_traces_are_gathered_bounded_and_per_tenant(redis_server):
    options = TraceOptions(redis_url=redis_server.url, store_max_traces=3, export_delay_ms=1)
    gateway, router = Tracing(options, "gateway"), Tracing(options, "router")
    ids = []
    for i in range(40):  # two exporters trimming the store concurrently, many times
        ids.append(one_request(gateway, router, "acme", f"r{i}"))
        time.sleep(0.002)
    gateway.shutdown()  # exports everything left and stops the export threads
    router.shutdown()
    body = read(redis_server.url, "acme", "r39")
    assert body["trace_id"] == ids[39] and body["request_id"] == "r39"
    spans = {s["name"]: s for s in body["spans"]}
    assert set(spans) == {"chat", "mixserve.routing", "mixserve.router.route"}
    assert spans["mixserve.router.route"]["component"] == "router"
    assert spans["mixserve.router.route"]["parent_id"] == spans["mixserve.routing"]["span_id"]
    assert spans["chat"]["parent_id"] is None and spans["chat"]["end"] >= spans["chat"]["start"]
    with pytest.raises(APIError) as other_tenant:
        read(redis_server.url, "globex", "r39")
    assert other_tenant.value.status == 404
    for old in (0, 20, 36):  # the oldest were dropped: 3 are kept, the newest
        with pytest.raises(APIError, match="no trace"):
            read(redis_server.url, "acme", f"r{old}")
    assert [read(redis_server.url, "acme", f"r{i}")["trace_id"] for i in (37, 38, 39)] == ids[37:]


def test_a_trace_store_that_hangs_does_not_hold_up_the_request():
    """A 'Redis' that accepts connections and never answers: the request's spans end at
    once, the export (off the request's path) fails after its timeout, and says so."""
    results: list[SpanExportResult] = []

    class Recording(RedisSpanExporter):
        def export(self, spans):  # type: ignore[no-untyped-def]
            results.append(super().export(spans))
            return results[-1]

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        exporter = Recording(url, max_traces=10, ttl_s=60)
        processor = BatchSpanProcessor(exporter, schedule_delay_millis=10)
        tracing = Tracing(TraceOptions(), "gateway", [processor])
        started = time.monotonic()
        trace = RequestTrace(tracing, "chat", "r1", "/v1/query")
        with trace.child("mixserve.ledger.settle"):
            pass
        trace.end(200)
        assert time.monotonic() - started < 0.5  # the request never waits on the store
        tracing.shutdown()  # waits for the export, which times out
    assert results and all(r == SpanExportResult.FAILURE for r in results)


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_spans_reach_an_otlp_collector(protocol):
    receiver = http_receiver if protocol == "http/protobuf" else grpc_receiver
    with receiver() as (endpoint, received):
        options = TraceOptions(otlp_endpoint=endpoint, otlp_protocol=protocol, export_delay_ms=10)
        gateway, router = Tracing(options, "gateway"), Tracing(options, "router")
        trace_id = one_request(gateway, router, "acme", "r1")
        gateway.shutdown()  # flushes
        router.shutdown()
        spans = received.of_trace(trace_id)
    assert {s["name"] for s in spans} == {"chat", "mixserve.routing", "mixserve.router.route"}
    components = {s["resource"]["mixserve.component"] for s in spans}
    assert components == {"gateway", "router"}
    root = next(s for s in spans if s["name"] == "chat")
    assert root["attributes"]["mixserve.tenant"] == "acme" and root["parent_id"] is None
