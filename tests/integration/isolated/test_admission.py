"""Admission control through HTTP, on a service of its own whose gateway admits three
requests at once: the rest are refused at once with 429 and Retry-After, nothing waits
or fails with a 5xx, and every slot comes back when its request ends, streamed or not."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.helpers.fleet import fake_fleet, gateway_changed
from tests.helpers.http import auth, chat

LIMIT = 3


@pytest.fixture(scope="module")
def service(tmp_path_factory, shared_ray):
    small_gate = gateway_changed(admission_limit=LIMIT, replicas=1)  # one gate of 3
    with fake_fleet(
        tmp_path_factory.mktemp("state"), tmp_path_factory.mktemp("r"), small_gate, ray=shared_ray
    ) as run:
        yield run


def test_past_capacity_requests_are_refused_at_once_and_slots_come_back(service):
    question = "Tell me about " + " ".join(f"topic{i}" for i in range(100))  # ~2 s of answer

    def ask(i):
        with httpx.Client(base_url=service.url, timeout=60, headers=auth(service)) as c:
            started = time.monotonic()
            resp = chat(c, question, model="general", max_tokens=100, temperature=0.5,
                        stream=bool(i % 2))  # fmt: skip
            return resp, time.monotonic() - started

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(ask, range(12)))
    statuses = sorted(r.status_code for r, _ in results)
    assert statuses == [200] * LIMIT + [429] * (12 - LIMIT), statuses
    refused = [(r, s) for r, s in results if r.status_code == 429]
    assert all(r.headers["retry-after"] == "1" for r, _ in refused)
    assert all(r.json()["error"]["code"] == "overloaded" for r, _ in refused)
    assert max(s for _, s in refused) < 1.0  # refused at once, not after waiting
    with httpx.Client(base_url=service.url, timeout=60, headers=auth(service)) as c:
        # every slot was released (streamed ones when their body ended): three fit again
        with ThreadPoolExecutor(LIMIT) as pool:
            again = list(pool.map(lambda _: chat(c, "What is 2 + 2?", max_tokens=4), range(3)))
    assert [r.status_code for r in again] == [200] * LIMIT
