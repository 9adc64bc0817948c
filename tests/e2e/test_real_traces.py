"""Traces of requests served by real vLLM engines, in the embedded default: the Redis
store behind GET /v1/traces and the rotating JSONL file in the run's state folder."""

from __future__ import annotations

import json

from tests.helpers.http import ask
from tests.helpers.waits import wait_file_spans, wait_trace


def test_a_streamed_real_answer_is_traced_end_to_end(client, live):
    resp = ask(
        client, "Write a Python function that adds two numbers", stream=True, temperature=0.3
    )
    assert resp.status_code == 200
    trace_id = resp.headers["x-mixserve-trace-id"]
    events = [json.loads(x[6:]) for x in resp.text.splitlines() if x.startswith("data: {")]
    usage = events[-1]["usage"]
    rid = events[0]["mixserve"]["request_id"]
    expected = {  # temperature > 0 (no cache lookup), no key (no budget reservation)
        "chat auto",
        "mixserve.routing",
        "mixserve.router.route",
        "mixserve.retrieval",
        "mixserve.retriever.search",
        "chat code",
        "mixserve.specialist.generate",
        "mixserve.ledger.settle",
    }
    trace = wait_trace(client, rid, lambda names: expected <= set(names))
    assert {s["name"] for s in trace["spans"]} == expected
    assert trace["trace_id"] == trace_id
    spans = {s["name"]: s for s in trace["spans"]}
    generate = spans["mixserve.specialist.generate"]["attributes"]
    assert generate["mixserve.engine"] == "vllm" and generate["gen_ai.response.model"] == "code"
    assert generate["gen_ai.usage.output_tokens"] == usage["completion_tokens"]
    assert generate["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
    assert 0 < generate["gen_ai.response.time_to_first_chunk"] < generate["mixserve.busy_s"] + 1
    root = spans["chat auto"]["attributes"]
    assert root["mixserve.cost_usd"] == usage["cost"]["total_usd"] > 0
    assert root["gen_ai.response.time_to_first_chunk"] > 0
    path = live["state"] / "traces" / "mixserve" / "spans.jsonl"
    assert wait_file_spans(path, trace_id, expected) == expected
