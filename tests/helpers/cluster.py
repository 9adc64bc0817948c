"""A multi-node Ray cluster on this machine, started by ``cluster.yaml``'s own ``ray start``
commands: the head's and the workers', made to fit one machine (free ports, 127.0.0.1,
small object stores, each node's own CPUs and custom resources). The launcher's
``ray stop`` before each start is left out: on a shared machine it would stop every Ray.

Every process a node starts carries that node's run marker in its environment, so one
node can be stopped alone (a node failure) and the whole cluster by pid at the end, as
``mixserve down`` stops a run."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from orchestrator.runtime import free_port
from orchestrator.runtime.procs import MARKER_VAR, pids_of_run, stop_run
from tests.helpers.paths import ROOT

RAY = str(Path(sys.executable).parent / "ray")
OBJECT_STORE_BYTES = 400 * 1024**2


def launcher_command(section: str) -> tuple[dict[str, str], list[str]]:
    """The ``ray start`` command of ``cluster.yaml``'s ``section``: the environment it
    sets (leading ``NAME=value`` words) and its words."""
    doc = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    starts = [c for c in doc[section] if " start " in f" {c} "]
    assert len(starts) == 1, f"{section}: one `ray start` expected, found {starts}"
    words = shlex.split(starts[0])
    env = {}
    while words and "=" in words[0] and not words[0].startswith("-"):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    return env, words


def _fit(words: list[str], head_port: int, metrics_port: int, dashboard_port: int) -> list[str]:
    """The launcher's command on this machine: our venv's ``ray``, free ports, loopback."""
    out = []
    for w in words:
        if w.endswith("/bin/ray"):
            w = RAY
        elif w.startswith("--autoscaling-config="):
            continue  # no launcher here: the cluster does not grow by itself
        elif w == "--port=6379":
            w = f"--port={head_port}"
        elif w == "--dashboard-host=0.0.0.0":
            out += ["--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}"]
            continue
        elif w.startswith("--metrics-export-port="):
            w = f"--metrics-export-port={metrics_port}"
        elif w.startswith("--address=$RAY_HEAD_IP:"):
            w = f"--address=127.0.0.1:{head_port}"
        out.append(w)
    return out


class LocalCluster:
    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.head_port = free_port()
        self.dashboard_port = free_port()
        self.metrics_ports: dict[str, int] = {}
        self.nodes: dict[str, list[str]] = {}  # node name -> its start command
        self.env: dict[str, str] = {}  # what the launcher sets for `ray start`

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.head_port}"

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def marker(self, node: str) -> str:
        return f"{self.run_id}-{node}"

    def _start(self, node: str, section: str, cpus: float, resources: dict[str, float]) -> None:
        metrics = self.metrics_ports.setdefault(node, free_port())
        launcher_env, words = launcher_command(section)
        self.env.update(launcher_env)  # RAY_AUTH_MODE=token: clients need it too
        words = _fit(words, self.head_port, metrics, self.dashboard_port)
        words += [
            "--node-ip-address=127.0.0.1",
            f"--num-cpus={cpus:g}",
            f"--resources={json.dumps(resources)}",
            f"--object-store-memory={OBJECT_STORE_BYTES}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            "--disable-usage-stats",
        ]
        if section.startswith("head"):
            words.append(f"--ray-client-server-port={free_port()}")
        self.nodes[node] = words
        proc = subprocess.run(
            words, env=self._node_env(node), capture_output=True, text=True, timeout=180
        )
        if proc.returncode != 0:
            raise RuntimeError(f"ray start of {node} failed: {proc.stderr[-2000:]}")

    def _node_env(self, node: str) -> dict[str, str]:
        env = {**os.environ, **self.env, MARKER_VAR: self.marker(node), "RAY_worker_niceness": "0"}
        env.pop("RAY_ADDRESS", None)
        return env

    def start_head(self, cpus: float, resources: dict[str, float]) -> None:
        self._start("head", "head_start_ray_commands", cpus, resources)

    def add_worker(self, node: str, cpus: float, resources: dict[str, float]) -> None:
        self._start(node, "worker_start_ray_commands", cpus, resources)

    def kill_node(self, node: str) -> list[int]:
        """SIGKILL every process ``node`` started (its raylet, object store, workers), by
        pid, as a machine that dies takes them all at once."""
        pids = pids_of_run(self.marker(node))
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pids

    def stop_node(self, node: str) -> list[str]:
        """Stop every process of ``node`` by pid (SIGTERM, then SIGKILL)."""
        return stop_run(self.marker(node))

    def restart_node(self, node: str) -> None:
        """The node back, started again by its own command."""
        env = {**os.environ, MARKER_VAR: self.marker(node), "RAY_worker_niceness": "0"}
        env.pop("RAY_ADDRESS", None)
        proc = subprocess.run(
            self.nodes[node], env=env, capture_output=True, text=True, timeout=180
        )
        if proc.returncode != 0:
            raise RuntimeError(f"ray start of {node} failed again: {proc.stderr[-2000:]}")

    def stop(self) -> list[str]:
        """Every node's processes, workers first, then the head; and the address file
        `ray start --head` wrote, as `ray stop` removes it (a later `ray.init()` without
        an address would try to join the stopped cluster)."""
        from ray._private.utils import get_ray_address_file, read_ray_address

        stopped: list[str] = []
        for node in sorted(self.nodes, key=lambda n: n == "head"):
            stopped += self.stop_node(node)
        current = read_ray_address() or ""
        if current.endswith(f":{self.head_port}"):
            Path(get_ray_address_file(None)).unlink(missing_ok=True)
        return stopped

    def connect(self) -> None:
        """Connect this process as a driver, with the launcher's auth mode (Ray reads its
        config once per process: refreshed here, as Ray's own token setup does)."""
        import ray
        from ray._raylet import Config

        os.environ.update(self.env)
        Config.initialize("")
        ray.init(address=self.address, logging_level="WARNING")

    def alive_nodes(self) -> list[dict[str, Any]]:
        import ray

        return [n for n in ray.nodes() if n["Alive"]]
