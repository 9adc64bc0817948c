"""Warnings about a recurring failure (Redis down: every request hits it), logged at most
once per interval, each saying how many like it were held back since the last."""

from __future__ import annotations

import logging
import threading
import time


class Throttled:
    def __init__(self, logger: logging.Logger, interval_s: float = 10.0) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def warning(self, msg: str, *args: object) -> None:
        """Log ``msg`` unless the same message was logged less than an interval ago."""
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(msg, float("-inf")) < self.interval_s:
                self._held[msg] = self._held.get(msg, 0) + 1
                return
            held = self._held.pop(msg, 0)
            self._last[msg] = now
        suffix = f" ({held} more like it in the last {self.interval_s:.0f} s)" if held else ""
        self.logger.warning(msg + suffix, *args)
