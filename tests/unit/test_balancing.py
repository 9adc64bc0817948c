"""Specialist-level balancing at the gateway and the router: each engine's free slots as
this gateway replica sees them, the bounded queue of requests waiting for one, and the
router batch's joint assignment against the free slots (``kernels.BalancedAssignment``)."""

from __future__ import annotations

import asyncio
import time

import pytest

from kernels import BalancedAssignment
from orchestrator.config import parse_config
from orchestrator.serving.engine_slots import POLL_S, EngineSlots, QueueFull, engine_capacity
from orchestrator.serving.joint import assign_jointly, capacity_of
from tests.unit.test_engines import BASE, fleet

APART = {"code": "specialist-code", "math": "specialist-math", "general": "specialist-general"}
OP = BalancedAssignment(device="cpu")


def decision(choice, **utilities):
    return {
        "choice": choice,
        "utilities": dict(utilities),
        "scores": dict(utilities),
        "confidence": utilities[choice],
        "reason": "highest utility",
    }


def cap(free, engines=APART, loss=None, min_score=0.0, gateway="g1"):
    return capacity_of(gateway, free, engines, loss, min_score)


# ---- engine slots ----------------------------------------------------------------------
def test_capacity_is_replicas_times_running_slots_shared_among_gateways():
    cfg = parse_config(
        fleet(
            ("general", {"engine": "base"}),
            ("math", {"engine": "base"}),
            ("code", {"max_ongoing_requests": 3}),
            engines=[{**BASE, "replicas": 2}],
            gateway={"replicas": 2},
        )
    )
    assert engine_capacity(cfg) == {"engine-base": 16, "specialist-code": 2}  # ceil(3 / 2)
    scaled = parse_config(
        fleet(
            (
                "code",
                {
                    "replicas": 3,
                    "autoscaling": {
                        "min_replicas": 2,
                        "max_replicas": 5,
                        "target_ongoing_requests": 2,
                    },
                },
            ),
        )
    )
    # two gateway replicas by default share the slots
    assert engine_capacity(scaled) == {"specialist-code": 3 * 16 // 2}


def test_held_slots_are_not_free_and_a_release_counts_once():
    slots = EngineSlots({"a": 2, "b": 1}, max_waiting=4)
    first, second, third = slots.hold("a"), slots.hold("a"), slots.hold("a")
    assert slots.free() == {"a": 0, "b": 1} and slots.held("a") == 3
    first()
    first()  # idempotent
    assert slots.free() == {"a": 0, "b": 1} and slots.held("a") == 2
    second()
    third()
    assert slots.free() == {"a": 2, "b": 1}


def test_a_waiter_is_woken_by_a_release_first_come_first_served():
    async def scenario():
        slots = EngineSlots({"a": 1}, max_waiting=4)
        release = slots.hold("a")
        order = []

        async def waiter(name):
            started = time.monotonic()
            await slots.wait("a", 30.0)
            order.append((name, time.monotonic() - started))

        tasks = [asyncio.create_task(waiter("first")), asyncio.create_task(waiter("second"))]
        while slots.waiting("a") < 2:
            await asyncio.sleep(0)
        release()
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        assert order[0][0] == "first" and order[0][1] < POLL_S  # woken, not polled
        await asyncio.gather(*tasks)  # the second one comes back by polling
        return order, slots.waiting("a")

    order, left = asyncio.run(scenario())
    assert [n for n, _ in order] == ["first", "second"] and left == 0
    assert order[1][1] >= POLL_S * 0.9


def test_the_wait_queue_is_bounded_and_a_wait_never_outlasts_its_timeout():
    async def scenario():
        slots = EngineSlots({"a": 1}, max_waiting=1)
        slots.hold("a")
        sitting = asyncio.create_task(slots.wait("a", 30.0))
        while slots.waiting("a") < 1:
            await asyncio.sleep(0)
        with pytest.raises(QueueFull):
            await slots.wait("a", 30.0)
        await sitting
        started = time.monotonic()
        await slots.wait("a", 0.05)
        return time.monotonic() - started

    assert asyncio.run(scenario()) < POLL_S


# ---- joint assignment ------------------------------------------------------------------
def test_first_choices_that_fit_are_left_alone():
    batch = [decision("code", code=0.9, math=0.5, general=0.4) for _ in range(3)]
    caps = [cap({"specialist-code": 3, "specialist-math": 0, "specialist-general": 0})] * 3
    assert assign_jointly(batch, caps, OP) == 0
    assert [d["choice"] for d in batch] == ["code"] * 3
    assert all("reassigned_from" not in d for d in batch)


def test_a_burst_moves_the_queries_that_lose_least():
    batch = [
        decision("code", code=0.9, math=0.2, general=0.1),  # code or nothing
        decision("code", code=0.8, math=0.75, general=0.1),  # math almost as good
        decision("code", code=0.85, math=0.3, general=0.8),  # general almost as good
    ]
    free = {"specialist-code": 1, "specialist-math": 4, "specialist-general": 4}
    assert assign_jointly(batch, [cap(free)] * 3, OP) == 2
    assert [d["choice"] for d in batch] == ["code", "math", "general"]
    assert batch[1]["reassigned_from"] == "code" and batch[2]["reassigned_from"] == "code"
    assert "balanced: code had 1 free slot(s) for 3 queries" in batch[1]["reason"]
    assert batch[1]["confidence"] == 0.75


def test_moves_stay_within_the_utility_margin_and_the_score_floor():
    free = {"specialist-code": 0, "specialist-math": 4, "specialist-general": 4}
    near = decision("code", code=0.8, math=0.75, general=0.1)
    far = decision("code", code=0.8, math=0.3, general=0.1)
    assert assign_jointly([near, far], [cap(free, loss=0.1)] * 2, OP) == 1
    assert near["choice"] == "math" and far["choice"] == "code"  # far waits for code
    low = decision("code", code=0.8, math=0.75, general=0.1)
    assert assign_jointly([low], [cap(free, min_score=0.76)], OP) == 0
    assert low["choice"] == "code"


def test_specialists_sharing_an_engine_share_its_free_slots():
    shared = {"code": "specialist-code", "math": "engine-base", "general": "engine-base"}
    batch = [decision("code", code=0.9, math=0.8, general=0.7) for _ in range(4)]
    free = {"specialist-code": 0, "engine-base": 2}
    assert assign_jointly(batch, [cap(free, shared)] * 4, OP) == 2
    moved = [d["choice"] for d in batch if "reassigned_from" in d]
    assert len(moved) == 2 and set(moved) <= {"math", "general"}
    assert [d["choice"] for d in batch].count("code") == 2  # no room left: they wait


def test_free_slots_add_up_over_gateways_and_queries_without_capacity_stay_out():
    batch = [decision("code", code=0.9, math=0.85, general=0.1) for _ in range(3)]
    one = {"specialist-code": 1, "specialist-math": 0, "specialist-general": 0}
    other = {"specialist-code": 1, "specialist-math": 1, "specialist-general": 0}
    caps = [cap(one, gateway="g1"), cap(other, gateway="g2"), None]
    assert assign_jointly(batch, caps, OP) == 0  # two code slots for the two that ask
    caps = [cap(one, gateway="g1"), cap(one, gateway="g1"), cap(other, gateway="g2")]
    assert assign_jointly(batch, caps, OP) == 1  # 2 code + 1 math for three
    assert [d["choice"] for d in batch].count("math") == 1


def test_a_query_never_moves_to_a_specialist_on_its_first_choices_full_engine():
    shared = {"code": "engine-base", "math": "engine-base", "general": "engine-base"}
    batch = [decision("code", code=0.9, math=0.89, general=0.1) for _ in range(3)]
    free = {"engine-base": 1}
    assert assign_jointly(batch, [cap(free, shared)] * 3, OP) == 0
    assert [d["choice"] for d in batch] == ["code"] * 3
