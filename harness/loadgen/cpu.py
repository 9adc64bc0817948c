"""CPU time of the processes on this machine, by the part of the service each one is:
read from ``/proc/<pid>/stat`` (user + system time of all a process's threads) before and
after a load, so a benchmark can say what each part costs per request.

A process is named by its command line: a Serve replica by its deployment
(``ray::ServeReplica:<app>:<deployment>``), Serve's proxy and controller, Redis, Ray's own
daemons and idle workers, and the benchmark's own process (the load generator and the
driver) apart from the service. A process that starts or ends during the load counts
for the time it was seen; one that ends between two snapshots loses its last slice.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")

# deployment name -> component, first match wins (a deployment's name, or its prefix)
DEPLOYMENTS = (
    ("gateway", "gateway"),
    ("router", "router"),
    ("retriever", "retriever"),
    ("engine-", "engine_replica"),
    ("specialist-", "engine_replica"),
)
SERVICE_PARTS = (
    "proxy", "gateway", "router", "retriever", "engine_replica", "redis", "serve_controller",
    "ray",
)  # fmt: skip


def component(cmdline: str, own: bool = False) -> str | None:
    """The part of the service a process with this command line is; ``loadgen`` for the
    benchmark's own; None for anything else on the machine."""
    if own:
        return "loadgen"
    head = cmdline.split("\0")[0]
    if head.startswith("ray::ServeReplica:"):
        deployment = head.rsplit(":", 1)[-1]
        if deployment.endswith("-front"):  # an engine's ingress: part of the way to it
            return "engine_replica"
        for prefix, name in DEPLOYMENTS:
            if deployment == prefix or deployment.startswith(prefix):
                return name
        return "other_replica"
    if head.startswith("ray::ProxyActor") or "haproxy" in head.lower():
        return "proxy"
    if head.startswith("ray::ServeController"):
        return "serve_controller"
    if "redis-server" in head:
        return "redis"
    if head.startswith("ray::") or any(
        daemon in cmdline
        for daemon in ("raylet", "gcs_server", "dashboard", "log_monitor", "ray/_private")
    ):
        return "ray"
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` (all its threads), None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) * TICK_S  # utime, stime (fields 14 and 15)


def snapshot(
    own: set[int] | None = None, name_of: Callable[[str, bool], str | None] = component
) -> dict[int, tuple[str, float]]:
    """pid -> (component, CPU seconds) of every process of the service on this machine;
    ``own`` are the benchmark's processes (default: this one); ``name_of`` names a
    process by its command line (None: not counted)."""
    mine = own if own is not None else {os.getpid()}
    found: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        name = name_of(cmdline, pid in mine)
        seconds = cpu_seconds(pid) if name else None
        if name and seconds is not None:
            found[pid] = (name, seconds)
    return found


def spent(
    before: Mapping[int, tuple[str, float]], after: Mapping[int, tuple[str, float]]
) -> dict[str, float]:
    """CPU seconds each component spent between two snapshots (a process that started
    in between counts from zero)."""
    out: dict[str, float] = {}
    for pid, (name, seconds) in after.items():
        start = before[pid][1] if pid in before and before[pid][0] == name else 0.0
        out[name] = out.get(name, 0.0) + max(0.0, seconds - start)
    return out


class CpuMeter:
    """CPU seconds by component over a stretch of time: ``start()``, the load, ``stop()``."""

    def __init__(self, take: Callable[[], dict[int, tuple[str, float]]] = snapshot) -> None:
        self.take = take
        self.before: dict[int, tuple[str, float]] = {}

    def start(self) -> None:
        self.before = self.take()

    def stop(self) -> dict[str, float]:
        return spent(self.before, self.take())


def per_request_ms(seconds: Mapping[str, float], requests: int) -> dict[str, float]:
    """Milliseconds of CPU per request by component, with ``service`` (every part of the
    service, not the load generator) and ``total``."""
    n = max(requests, 1)
    out = {name: round(seconds.get(name, 0.0) * 1000 / n, 3) for name in SERVICE_PARTS}
    out["loadgen"] = round(seconds.get("loadgen", 0.0) * 1000 / n, 3)
    others = sum(v for k, v in seconds.items() if k not in SERVICE_PARTS and k != "loadgen")
    out["other_replica"] = round(others * 1000 / n, 3)
    out["service"] = round(
        sum(seconds.get(k, 0.0) for k in SERVICE_PARTS) * 1000 / n + out["other_replica"], 3
    )
    return out
