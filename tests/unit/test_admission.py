"""Admission at the gateway: a bounded number of requests in progress, refusals at once
past it, releases that are idempotent, and slots whose release was lost expiring."""

from __future__ import annotations

import pytest

from orchestrator import profiles
from orchestrator.config import load_config
from orchestrator.errors import APIError
from orchestrator.serving.admission import Admission, fleet_limit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_past_the_limit_requests_are_refused_with_retry_after_and_releases_free_slots():
    gate = Admission(limit=2, horizon_s=10)
    first, second = gate.admit(), gate.admit()
    with pytest.raises(APIError) as info:
        gate.admit()
    assert (info.value.status, info.value.code) == (429, "overloaded")
    assert info.value.headers() == {"Retry-After": "1"} and gate.refused == 1
    first()
    first()  # a second release of the same slot frees nothing more
    third = gate.admit()
    with pytest.raises(APIError):
        gate.admit()
    second(), third()
    assert gate.in_flight == 0


def test_a_slot_whose_release_was_lost_expires_after_the_horizon():
    clock = Clock()
    gate = Admission(limit=1, horizon_s=5, clock=clock)
    gate.admit()  # never released
    clock.now = 4.9
    with pytest.raises(APIError):
        gate.admit()
    clock.now = 5.0
    gate.admit()
    assert gate.in_flight == 1


def test_the_default_limit_is_the_fleets_slots_shared_by_the_gateways():
    shipped = load_config(profiles.FOLDER / "cpu.yaml")
    assert fleet_limit(shipped) == shipped.gateway.admission_limit == 12  # measured, set
    assert shipped.gateway.replicas == 2  # 24 in all
    gateway = shipped.gateway.model_copy(update={"admission_limit": None})
    cfg = shipped.model_copy(update={"gateway": gateway})
    engine = cfg.specialists[0]  # the three specialists share one engine: its slots count once
    slots = engine.max_ongoing_requests + engine.max_queued_requests
    assert {s.deployment for s in cfg.specialists} == {"engine-gemma"}
    apart = [s.model_copy(update={"engine": None}) for s in cfg.specialists]
    assert fleet_limit(cfg.model_copy(update={"specialists": apart})) == -(-3 * slots // 2)
    assert fleet_limit(cfg) == -(-slots // 2)  # two gateway replicas share them
    one = cfg.model_copy(update={"gateway": cfg.gateway.model_copy(update={"replicas": 1})})
    assert fleet_limit(one) == slots
    own = cfg.model_copy(update={"gateway": cfg.gateway.model_copy(update={"admission_limit": 7})})
    assert fleet_limit(own) == 7


def test_retry_after_is_the_time_the_work_in_progress_takes_to_turn_over():
    clock = Clock()
    gate = Admission(limit=4, horizon_s=10_000, clock=clock)
    slots = [gate.admit() for _ in range(4)]

    def refusal_wait() -> int:
        with pytest.raises(APIError) as info:
            gate.admit()
        return int(info.value.headers()["Retry-After"])

    assert refusal_wait() == 1  # nothing came back yet: the least
    for i in range(2):  # one slot back every 5 s
        clock.now += 5.0
        slots[i]()
        slots[i] = gate.admit()
    # 2 back in 5 s (0.4/s), 4 in progress: 10 s to turn over
    assert refusal_wait() == 10
    clock.now += 1000.0  # the window forgets: the least again
    assert refusal_wait() == 1
    fast = Admission(limit=1, horizon_s=600, clock=clock)
    for _ in range(50):  # quick turnover: never below 1 s, never above the cap
        fast.admit()()
        clock.now += 0.01
    fast.admit()
    with pytest.raises(APIError) as info:
        fast.admit()
    assert info.value.headers()["Retry-After"] == "1"
