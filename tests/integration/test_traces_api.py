"""Request traces through the running app: one trace per request across the gateway,
router, retriever and specialist replicas, in the Redis store (GET /v1/traces), in the
JSONL file and at an OTLP collector; tenants see only their own."""

from __future__ import annotations

import json
import time
import uuid

import httpx

from tests.helpers.fleet import key_store, ledger
from tests.helpers.http import chat
from tests.helpers.waits import wait_file_spans, wait_trace

QUESTION = "How does mixserve pick the specialist that answers a query?"


def test_one_request_is_one_trace_across_every_deployment(client, service):
    question = f"{QUESTION} ({uuid.uuid4().hex[:6]})"  # not in the response cache
    resp = chat(client, question, temperature=0, max_tokens=6)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    specialist, usage = body["model"], body["usage"]
    trace_id = resp.headers["x-mixserve-trace-id"]
    assert body["mixserve"]["trace_id"] == trace_id
    needed = {
        "chat auto",
        "mixserve.routing",
        "mixserve.router.route",
        "mixserve.retrieval",
        "mixserve.retriever.search",
        "mixserve.cache.lookup",
        f"chat {specialist}",
        "mixserve.specialist.generate",
        "mixserve.ledger.settle",
    }
    trace = wait_trace(client, body["mixserve"]["request_id"], lambda names: needed <= set(names))
    spans = {s["name"]: s for s in trace["spans"]}
    assert trace["trace_id"] == trace_id and {s["trace_id"] for s in trace["spans"]} == {trace_id}
    components = {s["component"] for s in trace["spans"]}
    engine = service.config.specialist(specialist).deployment  # its shared engine's, if any
    assert components == {"gateway", "router", "retriever-docs", engine}
    ids = {s["span_id"] for s in trace["spans"]}
    assert [s["name"] for s in trace["spans"] if s["parent_id"] is None] == ["chat auto"]
    assert all(s["parent_id"] in ids for s in trace["spans"] if s["parent_id"] is not None)

    def parent(name: str) -> str:
        return next(s["name"] for s in trace["spans"] if s["span_id"] == spans[name]["parent_id"])

    assert parent("mixserve.router.route") == "mixserve.routing"
    assert parent("mixserve.retriever.search") == "mixserve.retrieval"
    assert parent("mixserve.specialist.generate") == f"chat {specialist}"
    assert parent(f"chat {specialist}") == "chat auto" == parent("mixserve.ledger.settle")

    root = spans["chat auto"]["attributes"]
    assert root["gen_ai.operation.name"] == "chat" and root["gen_ai.request.model"] == "auto"
    assert root["gen_ai.response.model"] == specialist
    assert root["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
    assert root["gen_ai.usage.output_tokens"] == usage["completion_tokens"]
    assert root["mixserve.cost_usd"] == usage["cost"]["total_usd"]
    assert root["mixserve.tenant"] == "tenant-a" and root["http.response.status_code"] == 200
    assert (
        root["mixserve.routing.choice"] == specialist
        and root["gen_ai.response.time_to_first_chunk"] > 0
    )
    assert root["mixserve.retrieval.source_ids"] == [s["id"] for s in body["mixserve"]["sources"]]
    generate = spans["mixserve.specialist.generate"]["attributes"]
    assert generate["mixserve.replica"] and generate["mixserve.node"]
    assert generate["mixserve.specialist"] == generate["gen_ai.request.model"] == specialist
    assert generate["mixserve.deployment"] == engine
    assert generate["mixserve.queue_wait_s"] >= 0 and generate["mixserve.busy_s"] > 0
    assert generate["gen_ai.usage.output_tokens"] == usage["completion_tokens"]
    call = spans[f"chat {specialist}"]["attributes"]
    assert call["mixserve.cost_usd"] <= usage["cost"]["specialists_usd"] + 1e-9
    assert spans["mixserve.router.route"]["attributes"]["mixserve.router.batch_size"] >= 1
    assert question not in json.dumps(trace)  # no prompt text unless config says so

    # the same trace in the ledger record, the JSONL file and at the OTLP collector
    rid = body["mixserve"]["request_id"]
    [record] = [r for r in ledger(service).records() if r["request_id"] == rid]
    assert record["trace_id"] == trace_id
    path = service.settings.state_dir / "traces" / "mixserve" / "spans.jsonl"
    expected = {s["name"] for s in trace["spans"]}
    assert wait_file_spans(path, trace_id, expected) == expected
    deadline = time.monotonic() + 10
    while {s["name"] for s in service.otlp.of_trace(trace_id)} != set(spans):
        assert time.monotonic() < deadline, "spans missing at the OTLP collector"
        time.sleep(0.2)


def test_every_call_of_a_policy_is_its_own_span(client):
    resp = chat(
        client,
        f"Is 17 a prime number? ({uuid.uuid4().hex[:6]})",
        max_tokens=4,
        mixserve={"policy": "ensemble", "ensemble": {"top_k": 2}},
    )
    assert resp.status_code == 200, resp.text
    calls = resp.json()["mixserve"]["policy"]["calls"]
    rid = resp.json()["mixserve"]["request_id"]
    trace = wait_trace(  # every call's replica span, and the gateway's last span
        client,
        rid,
        lambda names: (
            names.count("mixserve.specialist.generate") == len(calls)
            and "mixserve.ledger.settle" in names
        ),
    )
    client_calls = [
        s for s in trace["spans"] if s["kind"] == "client" and s["name"].startswith("chat ")
    ]
    assert len(calls) == 3 and sorted(s["name"] for s in client_calls) == sorted(
        f"chat {c['specialist']}" for c in calls
    )
    root = next(s for s in trace["spans"] if s["parent_id"] is None)["attributes"]
    assert root["mixserve.policy"] == "ensemble" and root["mixserve.policy.calls"] == 3


def test_a_tenant_cannot_see_another_tenants_trace(client, service):
    resp = chat(client, "What is 2 + 2?", temperature=0.5, max_tokens=3)
    rid = resp.json()["mixserve"]["request_id"]
    wait_trace(client, rid, lambda names: "chat auto" in names)
    other_key, _ = key_store(service).create("tenant-b")
    headers = {"authorization": f"Bearer {other_key}"}
    with httpx.Client(base_url=service.url, timeout=60, headers=headers) as other:
        theirs = other.get(f"/v1/traces/{rid}")
        assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "not_found"
        assert other.get("/v1/traces/never-made").status_code == 404
    assert httpx.get(f"{service.url}/v1/traces/{rid}").status_code == 401  # no key at all
