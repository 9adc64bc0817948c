"""Ledger settlements that could not reach Redis, kept on local disk until they can.

Each gateway process appends to its own JSONL file, one settlement a line, flushed and
fsynced before the request's answer is complete. Draining renames the file first (new
settlements go to a fresh one), replays every line through the ledger's idempotent
settle, and deletes the file only when all of it went through; a drain cut short is
simply replayed later, and the ledger's idempotent settlement (by the settlement id each
request draws) makes the replay count once. A line that does not parse (a write torn by
a crash) is reported and skipped.

**Who owns a file.** Each spool holds an exclusive ``flock`` on its own lock file
(``spool-<id>.lock``) for as long as its process lives; the kernel drops the lock when
the process dies, however it dies. A spool file whose lock another spool can take is an
orphan: it is adopted (renamed into the adopter's name, atomically, so two adopters
never both take it) and drained with the adopter's own. No process ids are involved, so
a reused pid can never make an orphan look alive.

Every method here blocks (file I/O, fsync): callers on an event loop run them in a
thread, as ``orchestrator.billing.accounting`` does.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger(__name__)


def _owner(path: Path) -> str:
    """``spool-<id>`` of ``spool-<id>.jsonl``, ``….jsonl.3``, ``….lock``."""
    return path.name.split(".", 1)[0]


def _try_lock(path: Path) -> IO[str] | None:
    """The lock file open and exclusively locked by us, or None if someone holds it."""
    handle = path.open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


class Spool:
    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.prefix = f"spool-{uuid.uuid4().hex[:16]}"
        self.path = folder / f"{self.prefix}.jsonl"
        lock = _try_lock(folder / f"{self.prefix}.lock")
        if lock is None:  # a fresh random name: nobody else can hold it
            raise RuntimeError(f"cannot lock the spool {self.prefix} in {folder}")
        self._lock_file = lock
        self._mutex = threading.Lock()
        self._rotations = 0

    def append(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        with self._mutex, self.path.open("a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def _adopt_orphans(self) -> None:
        """Take over the files of spools whose process is gone, and drop their locks.
        Only owners with data files are looked at: a spool that is starting holds its
        lock before it writes anything, so it is never mistaken for an orphan."""
        owners = {_owner(p) for p in self.folder.glob("spool-*.jsonl*")} - {self.prefix}
        for owner in sorted(owners):
            lock_path = self.folder / f"{owner}.lock"
            lock = _try_lock(lock_path)
            if lock is None:  # its gateway is alive
                continue
            try:
                for path in sorted(self.folder.glob(f"{owner}.jsonl*")):
                    self._rotations += 1
                    target = self.folder / f"{self.prefix}.jsonl.{self._rotations}"
                    try:
                        os.rename(path, target)
                    except FileNotFoundError:  # another spool adopted it first
                        continue
                lock_path.unlink(missing_ok=True)
            finally:
                lock.close()
        for lock_path in self.folder.glob("spool-*.lock"):  # dead spools that never wrote
            if _owner(lock_path) != self.prefix and self._stale(lock_path):
                lock_path.unlink(missing_ok=True)

    @staticmethod
    def _stale(lock_path: Path, min_age_s: float = 60.0) -> bool:
        """An unheld lock file, old enough that its spool is not just starting."""
        try:
            if time.time() - lock_path.stat().st_mtime < min_age_s:
                return False
        except FileNotFoundError:
            return False
        lock = _try_lock(lock_path)
        if lock is None:
            return False
        lock.close()
        return True

    def pending(self) -> list[Path]:
        """Files waiting to be drained: this spool's rotated files, after adopting the
        files of dead gateways."""
        with self._mutex:
            self._adopt_orphans()
            return sorted(self.folder.glob(f"{self.prefix}.jsonl.*"))

    def waiting(self) -> bool:
        """Whether anything is left to drain (ours, or an orphan's)."""
        return self.path.exists() or bool(self.pending())

    def _rotate(self) -> list[Path]:
        with self._mutex:
            if self.path.exists():
                self._rotations += 1
                self.path.rename(self.folder / f"{self.prefix}.jsonl.{self._rotations}")
        return self.pending()

    async def drain(self, settle: Callable[[dict[str, Any]], Awaitable[Any]]) -> int:
        """Replay spooled settlements; returns how many went through. A failure stops the
        drain with the rest kept (raised to the caller, who retries later). File work
        runs in a thread; only ``settle`` runs on the caller's loop."""
        import asyncio

        done = 0
        for path in await asyncio.to_thread(self._rotate):
            text = await asyncio.to_thread(path.read_text, encoding="utf-8")
            for number, line in enumerate(text.splitlines(), 1):
                try:
                    entry = json.loads(line)
                except ValueError:
                    logger.error("spool %s line %d is corrupt; skipped: %.80r", path, number, line)
                    continue
                await settle(entry)
                done += 1
            await asyncio.to_thread(path.unlink, missing_ok=True)
        return done

    def close(self) -> None:
        """Release the lock (a process that exits releases it anyway)."""
        self._lock_file.close()
