"""Finding and stopping the processes one mixserve run started, by pid, never by name.

Every process a run starts (Serve replicas and the vLLM ``EngineCore``/worker processes
they fork) carries ``MIXSERVE_RUN_MARKER=<id>`` in its environment. When a replica dies
without shutting its engine down, vLLM's children are re-parented to init and keep
gigabytes of memory; ``pids_of_run`` finds them by that marker so they can be stopped.
redis-server is the exception: it writes its process title over its environment, so the
embedded Redis is stopped by the pid recorded in the run's state file instead.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

from orchestrator.settings import RUN_MARKER_VAR as MARKER_VAR


def pids_of_run(run_id: str) -> list[int]:
    marker = f"{MARKER_VAR}={run_id}".encode()
    spared = _ancestors_and_self()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in spared:
            continue
        try:
            env = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in env.split(b"\0"):
            found.append(int(entry.name))
    return sorted(found)


def _ancestors_and_self() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return pids


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except (OSError, IndexError):
        return True
    return state != "Z"


def terminate_pids(pids: Iterable[int], timeout_s: float = 10.0) -> list[int]:
    """SIGTERM, wait, then SIGKILL what is left. Returns the pids that were signalled."""
    targets = [p for p in pids if p != os.getpid() and alive(p)]
    for pid in targets:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(alive(p) for p in targets):
        time.sleep(0.1)
    for pid in targets:
        if alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return targets


def describe(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return f"{pid} (gone)"
    command = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    return f"{pid} {command[:80]}"


def stop_run(run_id: str, timeout_s: float = 10.0) -> list[str]:
    """Stop every process still carrying this run's marker; describe what was stopped."""
    pids = pids_of_run(run_id)
    described = [describe(p) for p in pids]
    terminate_pids(pids, timeout_s)
    return described


def replica_pids(run_id: str, deployment: str) -> list[int]:
    """The run's Serve replica processes of ``deployment`` (their process title names
    it: ``ray::ServeReplica:<app>:<deployment>``)."""
    found = []
    for pid in pids_of_run(run_id):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "ServeReplica:" in title and title.split("\0")[0].endswith(f":{deployment}"):
            found.append(pid)
    return found
