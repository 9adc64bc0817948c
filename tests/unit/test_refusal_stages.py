"""A refusal's time taken apart: the client's send and read times against the gateway's
root span of the same request (from the run's JSONL trace file, joined on the request
id), and the load generator's own loop lag measured beside it."""

from __future__ import annotations

import asyncio
import json
import time
from types import SimpleNamespace

from loadgen.loop_lag import LoopLag
from mixserve_bench.cli.refusals import breakdown, root_spans


def span(rid, start, end, parent=None):
    return {"name": "chat", "parent_id": parent, "start": start, "end": end,
            "attributes": {"mixserve.request_id": rid}}  # fmt: skip


def write(path, spans, torn=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(s) + "\n" for s in spans)
    path.write_text(text + ('{"name": "half' if torn else ""))


def test_root_spans_are_read_from_every_rotated_file_and_torn_lines_skipped(tmp_path):
    write(tmp_path / "mixserve" / "spans.jsonl", [span("a", 1.0, 1.5)], torn=True)
    write(tmp_path / "mixserve" / "spans.jsonl.1", [span("b", 2.0, 2.1), span("c", 2, 3, "p")])
    assert root_spans(tmp_path) == {"a": (1.0, 1.5), "b": (2.0, 2.1)}


def test_the_stages_add_up_to_what_the_client_saw(tmp_path):
    # sent at 100.0, read 0.5 s later; the gateway held it from 100.2 to 100.25
    write(tmp_path / "m" / "spans.jsonl", [span("r1", 100.2, 100.25)])
    refused = SimpleNamespace(status=429, request_id="r1", sent_at=100.0, latency_s=0.5)
    unknown = SimpleNamespace(status=429, request_id="r2", sent_at=100.0, latency_s=0.1)
    answered = SimpleNamespace(status=200, request_id="r3", sent_at=100.0, latency_s=2.0)
    out = breakdown([refused, unknown, answered], tmp_path, wait_s=0.6)
    assert out["refused"] == 2 and out["matched"] == 1
    assert out["client"]["p50"] == 500.0
    assert out["before_gateway"]["p50"] == 200.0
    assert out["in_gateway"]["p50"] == 50.0
    assert out["after_gateway"]["p50"] == 250.0


def test_loop_lag_sees_a_loop_held_by_blocking_work():
    async def run():
        async with LoopLag(interval_s=0.005) as lag:
            await asyncio.sleep(0.05)
            time.sleep(0.2)  # the loop is held: the watcher wakes ~0.2 s late
            await asyncio.sleep(0.02)
        return lag.samples_s

    samples = asyncio.run(run())
    assert max(samples) >= 0.15
    assert min(samples) < 0.05
