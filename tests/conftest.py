"""Test tiers by folder: unit (no Ray, no models), integration (local Ray, real Redis,
fake engines), e2e (real vLLM and real models). What tests share is in ``tests/helpers``."""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "integration" in parts:
            item.add_marker(pytest.mark.integration)
        elif "e2e" in parts:
            item.add_marker(pytest.mark.e2e)
