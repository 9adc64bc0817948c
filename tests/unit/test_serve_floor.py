"""benchmarks/serve_floor.py: its CPU accounting names each floor deployment apart from
mixserve's parts, its stand-in engine batches the stream as mixserve's engines do, and
its plot stacks each variant's parts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from tests.helpers.paths import ROOT


def _floor() -> Any:
    spec = importlib.util.spec_from_file_location(
        "serve_floor", ROOT / "benchmarks" / "serve_floor.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["serve_floor"] = module
    spec.loader.exec_module(module)
    return module


floor = _floor()


def test_floor_replicas_are_counted_apart_from_the_service_they_share_a_ray_with():
    replica = "ray::ServeReplica:floor-h2:floor-unary\0"
    assert floor.part_of(replica, own=False) == "floor-unary"
    assert floor.part_of("ray::ServeReplica:mixserve:gateway\0", own=False) == "gateway"
    assert floor.part_of("ray::ServeReplica:mixserve:retriever-docs\0", False) == "retriever"
    assert floor.part_of("python\0benchmarks/serve_floor.py\0", own=True) == "loadgen"
    assert floor.part_of("/usr/bin/sshd\0", own=False) is None


async def test_the_stand_in_engine_sends_the_first_token_alone_then_batches():
    pieces = [piece async for piece in floor.paced(64)]
    assert pieces[0] == " tok"  # the first token goes at once
    assert "".join(pieces) == " tok" * 64  # every token, once, in order
    assert len(pieces) < 64  # the rest went in chunks of 20 ms
    stream = floor.Stream.func_or_class()  # the stream deployment yields the same pace
    assert "".join([p async for p in stream(8)]) == " tok" * 8


def test_the_plot_stacks_each_variants_parts(tmp_path: Path):
    def rounds(**cpu: float) -> list[dict[str, Any]]:
        return [{"cpu_ms_per_request": cpu}]

    report = {
        "rounds": {
            "mixserve_pinned": rounds(gateway=6.0, retriever=4.0, engine_replica=2.0, proxy=1.0),
            "floor_h2": rounds(**{"floor-ingress": 5.0, "floor-unary": 2.0, "proxy": 1.0}),
        },
        "summary": {
            "mixserve_pinned": {"requests_per_s": 100},
            "floor_h2": {"requests_per_s": 120},
        },
    }
    path = tmp_path / "floor.png"
    floor.plot(report, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_its_snapshot_reads_this_process_as_the_load_generator():
    import os

    taken = floor.snapshot()
    name, seconds = taken[os.getpid()]
    assert name == "loadgen" and seconds > 0
