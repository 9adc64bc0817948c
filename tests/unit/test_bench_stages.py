"""Taking a request's time to first token apart from its trace's spans."""

from __future__ import annotations

import pytest

from mixserve_bench.cli.stages import ENGINE_SPAN, TTFT, stages_of


def _spans(root_ttft=0.50, call_start=10.02, call_ttft=0.45, queue=0.10, engine_ttft=0.30):
    return [
        {"name": "chat general", "parent_id": None, "start": 10.0, "attributes": {TTFT: root_ttft}},
        {
            "name": "chat general",
            "parent_id": "a",
            "start": call_start,
            "attributes": {TTFT: call_ttft, "mixserve.call.index": 1},
        },
        {
            "name": ENGINE_SPAN,
            "parent_id": "b",
            "start": 10.2,
            "attributes": {TTFT: engine_ttft, "mixserve.queue_wait_s": queue},
        },
    ]


def test_the_stages_add_up_to_what_the_client_saw():
    row = stages_of(_spans(), client_ttft_s=0.60)
    assert row is not None
    assert row["in_front_of_gateway"] == pytest.approx(0.10)
    assert row["gateway_before_call"] == pytest.approx(0.02)
    assert row["to_engine"] == pytest.approx(0.10)
    assert row["engine_ttft"] == pytest.approx(0.30)
    assert row["back_to_gateway"] == pytest.approx(0.05)
    assert row["first_chunk_to_text"] == pytest.approx(0.03)
    parts = sum(v for k, v in row.items() if k != "client_ttft")
    assert parts == pytest.approx(row["client_ttft"])


def test_an_incomplete_trace_gives_no_row():
    spans = _spans()
    assert stages_of(spans[:2], 0.6) is None  # the engine's span not exported yet
    del spans[2]["attributes"]["mixserve.queue_wait_s"]
    assert stages_of(spans, 0.6) is None
