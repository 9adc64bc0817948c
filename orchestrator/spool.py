"""Ledger settlements that could not reach Redis, kept on local disk until they can.

Each gateway process appends to its own JSONL file, one settlement a line, flushed and
fsynced before the request's answer is complete. Draining renames the file first (new
settlements go to a fresh one), replays every line through the ledger's idempotent
settle, and deletes the file only when all of it went through; a drain cut short is
simply replayed later, and the ledger's idempotent settlement (by the settlement id each
request draws) makes the replay count once. Files
left by gateways that died are drained too. A line that does not parse (a write torn by a
crash) is reported and skipped.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from orchestrator.procs import alive

logger = logging.getLogger(__name__)


class Spool:
    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.prefix = f"spool-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.path = folder / f"{self.prefix}.jsonl"
        self._lock = threading.Lock()
        self._rotations = 0

    def append(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def _ours_or_orphaned(self, path: Path) -> bool:
        parts = path.name.split("-")
        if path.name.startswith(self.prefix):
            return True
        return len(parts) > 2 and parts[1].isdigit() and not alive(int(parts[1]))

    def pending(self) -> list[Path]:
        """Files waiting to be drained: this process's, and those of dead gateways."""
        return sorted(p for p in self.folder.glob("spool-*.jsonl*") if self._ours_or_orphaned(p))

    async def drain(self, settle: Callable[[dict[str, Any]], Awaitable[Any]]) -> int:
        """Replay spooled settlements; returns how many went through. A failure stops the
        drain with the rest kept (raised to the caller, who retries later)."""
        with self._lock:
            if self.path.exists():
                self._rotations += 1
                self.path.rename(self.folder / f"{self.prefix}.jsonl.{self._rotations}")
        done = 0
        for path in self.pending():
            if path == self.path:
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:  # another gateway drained this orphan first
                continue
            for number, line in enumerate(text.splitlines(), 1):
                try:
                    entry = json.loads(line)
                except ValueError:
                    logger.error("spool %s line %d is corrupt; skipped: %.80r", path, number, line)
                    continue
                await settle(entry)
                done += 1
            path.unlink(missing_ok=True)
        return done
