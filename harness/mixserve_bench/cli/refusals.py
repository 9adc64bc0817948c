"""Where a refusal's time goes under overload, from both ends: the client's clock (when
it sent, when the answer was read) and the gateway's root span of the same request (its
start and end, Unix time; joined on ``x-request-id``), read from the run's JSONL trace
file. Client and service share this machine's clock.

- ``before_gateway``: from the client's send to the gateway's span start: the client's
  own loop writing it, HAProxy's queue and connection, the replica's HTTP server;
- ``in_gateway``: the gateway's span (admission refuses at once);
- ``after_gateway``: from the span's end to the client reading the answer: the way back
  and the client's loop getting round to it (``client_loop_lag_ms`` says how late that
  loop ran, on its own)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

STAGES = ("client", "before_gateway", "in_gateway", "after_gateway")


def root_spans(folder: Path) -> dict[str, tuple[float, float]]:
    """request id -> (start, end) of every root span in the trace files under ``folder``."""
    found: dict[str, tuple[float, float]] = {}
    for path in sorted(folder.glob("**/spans.jsonl*")):
        for line in path.read_text(errors="replace").splitlines():
            try:
                span = json.loads(line)
            except ValueError:  # a line being written
                continue
            rid = span.get("attributes", {}).get("mixserve.request_id")
            if span.get("parent_id") is None and rid:
                found[str(rid)] = (float(span["start"]), float(span["end"]))
    return found


def stages(outcome: Any, span: tuple[float, float]) -> dict[str, float]:
    start, end = span
    return {
        "client": outcome.latency_s,
        "before_gateway": start - outcome.sent_at,
        "in_gateway": end - start,
        "after_gateway": outcome.sent_at + outcome.latency_s - end,
    }


def breakdown(outcomes: Sequence[Any], folder: Path, wait_s: float = 15.0) -> dict[str, Any]:
    """p50/p99 (ms) of each stage over the refused requests found in the trace files; the
    spans reach the file within the exporter's delay, so it reads until every refusal is
    there or ``wait_s`` has passed."""
    from loadgen.report import percentiles_ms

    refused = [o for o in outcomes if o.status == 429 and o.request_id]
    deadline = time.monotonic() + wait_s
    spans = root_spans(folder)
    while time.monotonic() < deadline and any(o.request_id not in spans for o in refused):
        time.sleep(0.5)
        spans = root_spans(folder)
    rows = [stages(o, spans[o.request_id]) for o in refused if o.request_id in spans]
    return {
        "refused": len(refused),
        "matched": len(rows),
        **{name: percentiles_ms([r[name] for r in rows]) for name in STAGES},
    }
