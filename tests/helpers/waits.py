"""Waiting for what arrives in the background (spans are exported in batches from
several processes): each wait polls a condition, bounded in time."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def wait_trace(client: Any, rid: str, done: Callable[[list[str]], bool], timeout_s: float = 20):
    """``GET /v1/traces/{rid}`` until ``done(span names)`` holds: spans are exported in
    batches from several processes, within a second or so of the answer."""
    deadline = time.monotonic() + timeout_s
    while True:
        resp = client.get(f"/v1/traces/{rid}")
        if resp.status_code == 200 and done([s["name"] for s in resp.json()["spans"]]):
            return resp.json()
        assert time.monotonic() < deadline, f"trace of {rid} incomplete: {resp.text[:2000]}"
        time.sleep(0.2)


def wait_file_spans(path: Path, trace_id: str, expected: set[str], timeout_s: float = 10):
    """The names of the trace's spans in the JSONL trace file, once they are ``expected``
    or the time is up: each exporter (store, file) of each process has its own batch
    timer, so the file may get a process's spans a moment after the store did."""
    deadline = time.monotonic() + timeout_s
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        names = {json.loads(x)["name"] for x in lines if trace_id in x}
        if names == expected or time.monotonic() > deadline:
            return names
        time.sleep(0.2)
