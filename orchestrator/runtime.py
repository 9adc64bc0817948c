"""Bring a mixserve deployment up and down: Ray, the embedded Redis, the Serve app.

Used by ``mixserve up``/``down`` and by the integration and e2e tests, so tests exercise
the same start-up path users run.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.config import MixserveConfig
from orchestrator.procs import MARKER_VAR, stop_run
from orchestrator.redis_server import RedisServer, start_redis
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
    started: float = field(default_factory=time.time)

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


class Deployment:
    """A running deployment started by this process; ``stop()`` undoes ``start()``."""

    def __init__(
        self,
        config: MixserveConfig,
        settings: Settings,
        *,
        port: int | None = None,
        run_id: str | None = None,
    ) -> None:
        self.config = config
        self.settings = settings
        self.port = port or config.gateway.port
        self.run_id = run_id or settings.run_id or uuid.uuid4().hex[:12]
        self.redis: RedisServer | None = None
        self.redis_url = settings.redis_url
        self.started_ray = False
        self.dashboard_url: str | None = None

    @property
    def url(self) -> str:
        return f"http://{self.config.gateway.host}:{self.port}"

    def missing_models(self) -> list[str]:
        from specialists.weights import is_prepared

        packages = {s.model.package for s in self.config.specialists if s.engine == "vllm"}
        packages.add(self.config.router.model.package)
        return sorted(p for p in packages if p and not is_prepared(p, self.settings.cache_dir))

    def start(self, step: Step | None = None, ready_timeout_s: float = 900.0) -> None:
        import ray
        from ray import serve

        report = step or (lambda _s: None)
        os.environ[MARKER_VAR] = self.run_id  # inherited by Ray's processes started below
        if self.redis_url is None:
            report("starting embedded Redis")
            self.redis = start_redis(self.settings.cache_dir / "redis" / self.run_id)
            self.redis_url = self.redis.url
        report("starting Ray" if self.settings.ray_address is None else "joining Ray")
        if not ray.is_initialized():
            if self.settings.ray_address:
                context = ray.init(address=self.settings.ray_address, logging_level=logging.WARNING)
            else:
                context = ray.init(
                    include_dashboard=True,
                    dashboard_host="127.0.0.1",
                    logging_level=logging.WARNING,
                )
                self.started_ray = True
            url = getattr(context, "dashboard_url", None)
            self.dashboard_url = f"http://{url}" if url and "://" not in url else url
        serve.start(http_options={"host": self.config.gateway.host, "port": self.port})
        from orchestrator.app import build_app

        app = build_app(
            self.config,
            cache_dir=self.settings.cache_dir,
            redis_url=self.redis_url,
            run_id=self.run_id,
        )
        report("deploying specialists, router and retriever")
        serve.run(app, name=self.config.name, route_prefix="/", blocking=False)
        report("waiting until ready")
        self.wait_ready(ready_timeout_s)

    def wait_ready(self, timeout_s: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            try:
                resp = httpx.get(f"{self.url}/readyz", timeout=15)
                if resp.status_code == 200:
                    return
                last = resp.text
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(1.0)
        raise TimeoutError(f"service not ready after {timeout_s:.0f}s: {last}")

    def state(self) -> RunState:
        return RunState(
            self.run_id,
            os.getpid(),
            self.url,
            self.config.name,
            self.redis_url,
            self.redis.pid if self.redis else None,
        )

    def stop(self) -> None:
        """Shut the Serve app down gracefully (engines stop), then Ray and Redis we started."""
        import ray

        try:
            if ray.is_initialized():
                from ray import serve

                serve.shutdown()
        except Exception as exc:  # noqa: BLE001 - keep stopping the rest
            logger.warning("serve shutdown failed: %s", exc)
        if self.started_ray and ray.is_initialized():
            ray.shutdown()
        leftovers = stop_run(self.run_id)
        if leftovers:
            logger.warning(
                "stopped %d leftover processes of run %s: %s",
                len(leftovers),
                self.run_id,
                "; ".join(leftovers),
            )
        if self.redis is not None:
            self.redis.stop()
            self.redis = None


def status_of(state: RunState) -> dict[str, Any]:
    import httpx

    from orchestrator.procs import alive

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
