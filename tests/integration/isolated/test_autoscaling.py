"""Autoscaling per specialist: `code` with `autoscaling` (1 to 2 replicas, one ongoing
request each as the target, no upscale delay) gets a second replica when a step in load
holds, and the step's requests are all answered."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from orchestrator.config import Autoscaling, Resources
from tests.helpers.fleet import fake_fleet, specialist_changed
from tests.helpers.http import auth, chat

SCALING_CODE = specialist_changed(
    "code",
    autoscaling=Autoscaling(
        min_replicas=1,
        max_replicas=2,
        target_ongoing_requests=1,
        upscale_delay_s=0,
        downscale_delay_s=600,
        look_back_period_s=2,
        metrics_interval_s=0.5,
    ),
    max_ongoing_requests=4,
    max_queued_requests=8,
    resources=Resources(num_cpus=0.1),
)


@pytest.fixture(scope="module")
def service(tmp_path_factory, shared_ray):
    with fake_fleet(
        tmp_path_factory.mktemp("state"), tmp_path_factory.mktemp("r"), SCALING_CODE, ray=shared_ray
    ) as run:
        yield run


def running_replicas(deployment: str) -> int:
    from ray import serve

    from orchestrator.app import engine_app

    app = serve.status().applications[engine_app("mixserve", deployment)]
    return int(app.deployments[deployment].replica_states.get("RUNNING", 0))


def test_a_step_in_load_adds_a_replica(service):
    assert running_replicas("specialist-code") == 1
    long_question = "Write a parser " + " ".join(f"rule{i}" for i in range(120))

    def ask(_: int) -> int:
        with httpx.Client(base_url=service.url, timeout=60, headers=auth(service)) as c:
            return chat(c, long_question, model="code", max_tokens=120, temperature=0.5).status_code

    statuses: list[int] = []
    deadline = time.monotonic() + 90
    with ThreadPoolExecutor(4) as pool:
        while running_replicas("specialist-code") < 2:  # the step holds until it scales
            assert time.monotonic() < deadline, "no second replica within 90 s of load"
            statuses += list(pool.map(ask, range(4)))
    assert statuses and all(s == 200 for s in statuses), statuses
