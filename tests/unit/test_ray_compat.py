"""The contract with Ray's private API (``orchestrator/ray_compat.py``): on the pinned Ray,
every private name mixserve uses is still where and what the module expects, and no other
module of the service reaches into Ray's internals. A Ray upgrade that moves a name fails
here, by name, instead of at run time."""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import re
import subprocess
import sys
import tomllib

from orchestrator import ray_compat
from tests.helpers.paths import ROOT

PACKAGES = (
    "orchestrator",
    "specialists",
    "retrieval",
    "router_model",
    "kernels",
    "weights",
    "harness/loadgen",  # the benchmark harness: it too goes through ray_compat
    "harness/mixserve_bench",
)
# a private module of Ray by dotted name, or a private member the service relies on
PRIVATE = re.compile(
    r"\bray(\.\w+)*\._\w+|_by_reference|_replica_queue_len_cache|_get_pending_request_matching"
)


def test_the_module_was_checked_against_the_ray_the_project_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = [d for d in project["dependencies"] if d.startswith("ray[")]
    assert pins == [f"ray[serve]=={ray_compat.RAY_VERSION}"]
    assert importlib.metadata.version("ray") == ray_compat.RAY_VERSION


def test_no_other_module_of_the_service_names_rays_internals():
    found = []
    for package in PACKAGES:
        assert (ROOT / package).is_dir(), package
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ROOT / "orchestrator" / "ray_compat.py":
                continue
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if PRIVATE.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not found, "Ray's private API outside orchestrator/ray_compat.py:\n" + "\n".join(found)


def test_build_app_is_serve_builds_first_step():
    from ray import serve
    from ray.serve.deployment import Deployment

    @serve.deployment(name="probe")
    class Probe:
        pass

    built = ray_compat.build_app(Probe.bind(), name="contract")  # type: ignore[attr-defined]
    assert [d.name for d in built.deployments] == ["probe"]
    assert all(isinstance(d, Deployment) for d in built.deployments)


def test_the_power_of_two_router_path_names_a_serve_request_router():
    from ray.serve.request_router import RequestRouter

    module, _, name = ray_compat.POWER_OF_TWO_ROUTER.partition(":")
    router = getattr(importlib.import_module(module), name)
    assert issubclass(router, RequestRouter)


def test_handles_take_the_transport_this_process_runs():
    from ray.serve.handle import DeploymentHandle

    assert "_by_reference" in inspect.signature(DeploymentHandle.options).parameters
    assert isinstance(ray_compat.grpc_by_default(), bool)

    class Handle:
        def options(self, **kwargs: object) -> dict[str, object]:
            return kwargs

    assert ray_compat.on_this_transport(Handle()) == {
        "_by_reference": not ray_compat.grpc_by_default()
    }
    assert ray_compat.on_this_transport(None) is None


def test_the_fifo_mixin_still_asks_the_hook_the_router_overrides():
    from ray.serve.request_router import FIFOMixin, RequestRouter

    hook = "_get_pending_request_matching_metadata"
    assert hasattr(FIFOMixin, hook)
    assert f"self.{hook}(" in inspect.getsource(FIFOMixin)  # still called, so still ours
    assert callable(RequestRouter._get_pending_request_matching_internal_request_id)

    from orchestrator.serving.replica_router import EngineLoadRouter

    assert EngineLoadRouter.__mro__.index(ray_compat.MatchPendingById) < (
        EngineLoadRouter.__mro__.index(FIFOMixin)
    )


def test_the_request_router_keeps_its_queue_length_cache():
    from ray.serve.request_router import RequestRouter

    assert "self._replica_queue_len_cache" in inspect.getsource(RequestRouter.__init__)
    cache = importlib.import_module("ray.serve._private.request_router.common")
    assert "replica_id" in inspect.signature(cache.ReplicaQueueLengthCache.get).parameters

    class Router:
        def __init__(self) -> None:
            self._replica_queue_len_cache = {"r1": 3}

    assert ray_compat.queued_on(Router(), "r1") == 3
    assert ray_compat.queued_on(Router(), "r2") is None


def test_the_config_imports_it_without_loading_ray():
    # the config and the CLI import this module; Ray loads only when a function runs
    code = "import sys, orchestrator.config, orchestrator.ray_compat; print('ray' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
