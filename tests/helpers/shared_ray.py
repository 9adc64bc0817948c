"""One local Ray for the integration tier's services, started once and used by each in
turn: a service deploys its Serve applications on it and shuts Serve down at its end,
instead of starting and stopping a Ray of its own (4 s to start and 2 s more to stop,
each time, measured here).

Ray is started by ``orchestrator.runtime.init_ray``, the code ``mixserve up`` runs, with
a SIGTERM handler of the test's own installed, and the handler found after the start is
kept (``sigterm_after_start``): ``test_api`` checks that starting Ray kept it.

Tests that need no Ray in this process (a multi-node cluster of their own, which this
process joins or whose nodes inherit this process's environment) ``release()`` it first;
the next service starts it again."""

from __future__ import annotations

import dataclasses
import os
import signal
import uuid
from typing import Any

from orchestrator.runtime import init_ray, shutdown_ray, stop_run
from orchestrator.runtime.procs import MARKER_VAR
from orchestrator.settings import get_settings


def sigterm_marker(_signum: int, _frame: Any) -> None:
    """A SIGTERM handler of the test's own, as `mixserve up` installs one."""
    raise KeyboardInterrupt


class SharedRay:
    def __init__(self) -> None:
        self.run_id: str | None = None
        self.sigterm_after_start: Any = None
        self.serving: str | None = None  # the run of the service deployed on it now
        self.max_header_bytes: int | None = None  # HAProxy's buffer was sized from it

    @property
    def running(self) -> bool:
        return self.run_id is not None

    def acquire(self, max_header_bytes: int) -> SharedRay:
        """Ray running in this process, started now unless it already is. HAProxy's
        buffer is sized from the gateway's header limit when Ray starts: a service with
        another limit gets a Ray started again for it."""
        if self.running and self.max_header_bytes != max_header_bytes:
            self.release()
        if self.running:
            return self
        import ray

        if ray.is_initialized():
            raise RuntimeError("another Ray is connected in this process: release it first")
        self.run_id = f"shared-ray-{uuid.uuid4().hex[:8]}"
        os.environ[MARKER_VAR] = self.run_id  # Ray's processes carry it: swept at release
        settings = dataclasses.replace(get_settings(), ray_address=None)
        previous = signal.signal(signal.SIGTERM, sigterm_marker)
        try:
            started = init_ray(settings, max_header_bytes)
            self.sigterm_after_start = signal.getsignal(signal.SIGTERM)
        finally:
            signal.signal(signal.SIGTERM, previous)
        assert started.started, "init_ray joined a Ray instead of starting one"
        self.max_header_bytes = max_header_bytes
        return self

    def deploying(self, run_id: str) -> None:
        """One service at a time: two would deploy Serve applications of the same names."""
        if self.serving is not None:
            raise RuntimeError(
                f"service {self.serving} is still deployed on the shared Ray: a test that "
                "disrupts its service gets one of its own only after the other has stopped"
            )
        self.serving = run_id

    def stopped(self, run_id: str) -> None:
        if self.serving == run_id:
            self.serving = None

    def release(self) -> list[str]:
        """Ray shut down, its Serve mode taken out of the environment, and every process
        that carries its marker stopped (what is left is described)."""
        if not self.running:
            return []
        if self.serving is not None:
            raise RuntimeError(f"service {self.serving} is still deployed on the shared Ray")
        run_id, self.run_id = self.run_id, None
        shutdown_ray()
        return stop_run(run_id)
