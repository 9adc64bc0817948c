"""Process runtime: the local run (``mixserve up``/``down``/``status``), finding and
stopping a run's processes by pid, and the embedded Redis server.

Public API: ``ServiceRun``, ``RunState``, ``run_status``, ``start_redis``,
``RedisServer``, ``free_port``, ``pids_of_run``, ``stop_run``, ``serve_env``.
"""

from orchestrator.runtime.embedded_redis import RedisServer, free_port, start_redis
from orchestrator.runtime.procs import pids_of_run, stop_run
from orchestrator.runtime.run import RunState, ServiceRun, run_status, serve_env

__all__ = [
    "RedisServer",
    "RunState",
    "ServiceRun",
    "free_port",
    "pids_of_run",
    "run_status",
    "serve_env",
    "start_redis",
    "stop_run",
]
