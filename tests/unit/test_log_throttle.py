"""A failure every request meets (Redis down) is logged once per interval, with a count."""

from __future__ import annotations

import logging

from orchestrator.telemetry import log_throttle
from orchestrator.telemetry.log_throttle import Throttled


def test_repeats_are_held_back_and_counted(monkeypatch, caplog):
    now = [100.0]
    monkeypatch.setattr(log_throttle.time, "monotonic", lambda: now[0])
    throttled = Throttled(logging.getLogger("t"), interval_s=10)
    with caplog.at_level(logging.WARNING, logger="t"):
        for i in range(5):
            throttled.warning("ledger unreachable: %s spooled", f"r{i}")
        throttled.warning("other failure")
        now[0] += 11
        throttled.warning("ledger unreachable: %s spooled", "r5")
    assert [r.getMessage() for r in caplog.records] == [
        "ledger unreachable: r0 spooled",
        "other failure",
        "ledger unreachable: r5 spooled (4 more like it in the last 10 s)",
    ]
