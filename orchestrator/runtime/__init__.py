"""Process runtime: the local run (``mixserve up``/``down``/``status``), finding and
stopping a run's processes by pid, and the embedded Redis server.

Public API: ``ServiceRun``, ``RunState``, ``run_status``, ``start_redis``,
``RedisServer``, ``free_port``, ``pids_of_run``, ``stop_run``, ``serve_env``,
``init_ray``, ``shutdown_ray``.
"""

from orchestrator.runtime.embedded_redis import RedisServer, free_port, start_redis
from orchestrator.runtime.procs import pids_of_run, stop_run
from orchestrator.runtime.run import (
    RunState,
    ServiceRun,
    init_ray,
    run_status,
    serve_env,
    shutdown_ray,
)

__all__ = [
    "RedisServer",
    "RunState",
    "ServiceRun",
    "free_port",
    "init_ray",
    "pids_of_run",
    "run_status",
    "serve_env",
    "shutdown_ray",
    "start_redis",
    "stop_run",
]
