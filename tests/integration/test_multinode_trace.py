"""One request's trace across two Ray nodes: the router on the head node, the specialist
on a second node (its own raylet), joined by the traceparent carried in call arguments."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers.paths import ROOT


def test_a_trace_spans_two_nodes(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "tests.integration.multinode_run", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1])
    spans = result["trace"]["spans"]
    by_name = {s["name"]: s for s in spans}
    assert {s["trace_id"] for s in spans} == {result["trace"]["trace_id"]}
    second = next(n for n, res in result["nodes"].items() if "second_node" in res)
    head = next(n for n, res in result["nodes"].items() if "head_node" in res)
    generate = by_name["mixserve.specialist.generate"]
    route = by_name["mixserve.router.route"]
    assert generate["attributes"]["mixserve.node"] == second != head
    assert route["attributes"]["mixserve.node"] == head
    specialist = result["answer"]["model"]
    call = by_name[f"chat {specialist}"]
    assert generate["parent_id"] == call["span_id"] and call["component"] == "gateway"
    assert call["parent_id"] == by_name["chat auto"]["span_id"]
