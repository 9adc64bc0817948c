"""Specialist-level balancing on the fake fleet: a routed query whose first choice has
no free slot is reassigned by the router batch's joint assignment (and says so in the
response, the trace and the metrics); a request that may not move waits in a bounded
queue for a slot and is served when one frees; past the queue's bound, or with
``mixserve.balance: false``, the specialist's 503 stands at once."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.helpers.fleet import both, fake_fleet, gateway_changed, spill_changed
from tests.helpers.http import auth, chat
from tests.helpers.waits import wait_trace

CODE_QUESTION = "Write a Python function that reverses a list"
LONG_QUESTION = CODE_QUESTION + " " + " ".join(f"step{i}" for i in range(150))  # ~3 s of fake
DEADLINE_S = 30.0
RIGID = {"balance": False}  # the first choice or a 503


@pytest.fixture(scope="module")
def service(tmp_path_factory, shared_ray):
    adjust = both(
        gateway_changed(request_timeout_s=DEADLINE_S, replicas=1),
        spill_changed(max_wait_s=20.0, max_waiting=1),
    )
    with fake_fleet(
        tmp_path_factory.mktemp("state"), tmp_path_factory.mktemp("r"), adjust, ray=shared_ray
    ) as run:
        yield run


def client(service):
    return httpx.Client(base_url=service.url, timeout=60, headers=auth(service))


def fill_code(service, pool):
    """Six long pinned requests for code (2 run, 2 queue, 2 refused: they may not wait);
    returns the four that hold code's slots and queue places, once the two were refused."""

    def filler(_):
        with client(service) as c:
            return chat(
                c, LONG_QUESTION, model="code", max_tokens=150, temperature=0.5, mixserve=RIGID
            )

    fillers = [pool.submit(filler, i) for i in range(6)]
    deadline = time.monotonic() + 30
    while sum(f.done() for f in fillers) < 2:
        assert time.monotonic() < deadline, "the fillers were never refused"
        time.sleep(0.02)
    refused = [f.result() for f in fillers if f.done()]
    assert [r.status_code for r in refused] == [503, 503], [r.text for r in refused]
    return [f for f in fillers if not f.done()]


def test_a_routed_query_without_a_free_slot_is_reassigned_and_says_so(service):
    with ThreadPoolExecutor(6) as pool:
        holding = fill_code(service, pool)
        with client(service) as c:
            routed = chat(c, CODE_QUESTION, max_tokens=4, temperature=0.5)
            rigid = chat(c, CODE_QUESTION, max_tokens=4, temperature=0.5, mixserve=RIGID)
        assert all(f.result().status_code == 200 for f in holding)
    assert routed.status_code == 200, routed.text
    body = routed.json()
    routing, policy = body["mixserve"]["routing"], body["mixserve"]["policy"]
    assert routing["reassigned_from"] == "code" and body["model"] == routing["choice"] != "code"
    assert "balanced: code had 0 free slot(s)" in routing["reason"]
    ranked = sorted(routing["utilities"], key=lambda n: -routing["utilities"][n])
    assert ranked[0] == "code" and body["model"] in ranked[1:]
    assert [(c["specialist"], c["outcome"]) for c in policy["calls"]] == [
        (body["model"], "streamed")
    ]
    # balance: false keeps the router's first choice: its full queue answers 503 at once
    assert rigid.status_code == 503 and rigid.json()["error"]["code"] == "overloaded"
    assert "reassigned_from" not in rigid.text
    with client(service) as c:
        trace = wait_trace(c, body["mixserve"]["request_id"], lambda n: "chat auto" in n)
        root = next(s for s in trace["spans"] if s["parent_id"] is None)["attributes"]
        assert root["mixserve.reassigned_from"] == "code"
        route = next(s for s in trace["spans"] if s["name"] == "mixserve.router.route")
        assert route["attributes"]["mixserve.routing.reassigned_from"] == "code"


def test_a_pinned_request_waits_for_a_slot_and_the_wait_queue_is_bounded(service):
    def pinned(_):
        with client(service) as c:
            started = time.monotonic()
            resp = chat(c, CODE_QUESTION, model="code", max_tokens=4, temperature=0.5)
            return resp, time.monotonic() - started

    with ThreadPoolExecutor(8) as pool:
        holding = fill_code(service, pool)
        waiters = [pool.submit(pinned, i) for i in range(2)]  # one waits, one finds it full
        answers = [w.result() for w in waiters]
        assert all(f.result().status_code == 200 for f in holding)
    by_status = {r.status_code: (r, s) for r, s in answers}
    assert sorted(by_status) == [200, 503], [r.text for r, _ in answers]
    full, full_s = by_status[503]
    assert full.json()["error"]["code"] == "overloaded" and full_s < 2.0  # refused at once
    served, _ = by_status[200]
    policy = served.json()["mixserve"]["policy"]
    assert served.json()["model"] == "code" and policy["waited_s"] > 0
    assert "waited" in policy["reason"] and "slot of code" in policy["reason"]
    with client(service) as c:
        rid = served.json()["mixserve"]["request_id"]
        trace = wait_trace(c, rid, lambda n: "chat code" in n)
        root = next(s for s in trace["spans"] if s["parent_id"] is None)["attributes"]
        assert root["mixserve.queue_wait_s"] == policy["waited_s"]
