"""Spill-over: a routed request whose specialist is saturated (its queue is full) is
answered by the next best; a request that pinned the specialist gets 503 instead.

Spill-over alone: no joint assignment (it would move the routed request before its call
is refused) and no waiting for a slot (``test_balancing.py`` has both)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.helpers.fleet import both, fake_fleet, gateway_changed, spill_changed
from tests.helpers.http import auth, chat

CODE_QUESTION = "Write a Python function that reverses a list"
DEADLINE_S = 30.0  # the queued fillers end after ~6 s: twice the fleet's usual deadline


@pytest.fixture(scope="module")
def service(tmp_path_factory, shared_ray):
    patient = both(
        gateway_changed(request_timeout_s=DEADLINE_S, replicas=1),
        spill_changed(joint_assignment=False, max_wait_s=0),
    )
    with fake_fleet(
        tmp_path_factory.mktemp("state"), tmp_path_factory.mktemp("r"), patient, ray=shared_ray
    ) as run:
        yield run


def test_a_saturated_specialist_spills_over_to_the_next_best(service):
    # the fake engine echoes the question: 150 words are 150 tokens of answer
    long_question = CODE_QUESTION + " " + " ".join(f"step{i}" for i in range(150))

    def filler(_):
        with httpx.Client(base_url=service.url, timeout=60, headers=auth(service)) as c:
            return chat(c, long_question, model="code", max_tokens=150, temperature=0.5)

    with ThreadPoolExecutor(6) as pool:
        fillers = [pool.submit(filler, i) for i in range(6)]  # 2 run, 2 wait, 2 refused
        # code is full once two fillers were refused: the other four hold its 2 slots and
        # its 2 queue places for about 3 s more (150 tokens at 0.02 s; its replica cannot
        # be asked: a stats call would wait for a slot like any other request)
        deadline = time.monotonic() + 30
        while sum(f.done() for f in fillers) < 2:
            assert time.monotonic() < deadline, "the fillers were never refused"
            time.sleep(0.02)
        refused = [f.result().status_code for f in fillers if f.done()]
        assert refused == [503, 503], refused
        with httpx.Client(base_url=service.url, timeout=60, headers=auth(service)) as c:
            routed = chat(c, CODE_QUESTION, max_tokens=4, temperature=0.5)
            pinned = chat(c, CODE_QUESTION, model="code", max_tokens=4, temperature=0.5)
        statuses = sorted(f.result().status_code for f in fillers)
    assert statuses.count(503) == 2 and statuses.count(200) == 4, statuses
    assert pinned.status_code == 503 and pinned.json()["error"]["code"] == "overloaded"
    assert int(pinned.headers["retry-after"]) >= 1
    assert routed.status_code == 200, routed.text
    body = routed.json()
    routing, policy = body["mixserve"]["routing"], body["mixserve"]["policy"]
    assert routing["choice"] == "code" and body["model"] != "code"
    assert routed.headers["x-mixserve-specialist"] == body["model"]
    ranked = sorted(routing["utilities"], key=lambda n: -routing["utilities"][n])
    assert body["model"] == ranked[1]  # the next best by the router's utility
    assert [(c["specialist"], c["outcome"]) for c in policy["calls"]] == [
        ("code", "overloaded"),
        (body["model"], "streamed"),
    ]
    assert "spilled to" in policy["reason"]
    assert body["usage"]["completion_tokens"] == policy["calls"][1]["completion_tokens"] > 0
