"""What importing a layer drags in: the CLI and the router library never load Ray,
FastAPI or torch just by being imported (each heavy import waits for the function that
needs it), and nothing of the orchestrator loads torch or vLLM at import."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("ray", "fastapi", "torch", "vllm", "faiss", "transformers")


def loaded_by(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(proc.stdout.split()) & set(HEAVY)


@pytest.mark.parametrize(
    "module, allowed",
    [
        ("orchestrator.cli.main", set()),
        ("router_model", set()),
        ("retrieval", set()),
        ("specialists", set()),
        ("weights", set()),
        ("orchestrator.billing", set()),
        ("orchestrator.app", {"ray", "fastapi"}),  # Serve's app builder: Serve, not torch
    ],
)
def test_importing_loads_nothing_heavy_it_does_not_need(module, allowed):
    assert loaded_by(module) <= allowed
