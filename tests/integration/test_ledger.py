"""The cost ledger against a real Redis server: budgets under concurrency, idempotent
settlement, abandoned reservations, records."""

from __future__ import annotations

import asyncio
import random

import pytest

from orchestrator.billing.ledger import Ledger
from orchestrator.errors import APIError
from orchestrator.redis_clients import async_client


@pytest.fixture()
def redis_url(redis_server):
    return redis_server.url


def test_200_concurrent_requests_never_spend_past_the_budget(redis_url):
    budget, max_cost = 1.0, 0.02  # room for 50 maximal requests

    async def scenario():
        client = async_client(redis_url)
        ledger = Ledger(client)
        rng = random.Random(0)

        async def request(i):
            rid = f"r{i}"
            try:
                await ledger.reserve("k1", budget, rid, max_cost)
            except APIError as err:
                assert err.status == 402 and err.code == "budget_exceeded"
                return 0.0
            await asyncio.sleep(rng.uniform(0, 0.02))  # generation
            cost = rng.uniform(0.5, 1.0) * max_cost  # the actual cost is at most the max
            assert await ledger.settle("k1", "acme", rid, cost, {"specialist": "code"})
            return cost

        costs = await asyncio.gather(*(request(i) for i in range(200)))
        spend = await ledger.spend("key", "k1")
        await client.aclose()
        return costs, spend

    costs, spend = asyncio.run(scenario())
    admitted = [c for c in costs if c > 0]
    assert spend.total_usd == pytest.approx(sum(costs), abs=1e-6)
    assert spend.total_usd <= budget
    assert spend.reserved_usd == 0 and spend.requests == len(admitted)
    assert 50 <= len(admitted) < 200  # refunds of unused reservations let more in


def test_settlement_is_idempotent_and_recorded_once(redis_url):
    async def scenario():
        client = async_client(redis_url)
        ledger = Ledger(client)
        await ledger.reserve("k1", 1.0, "r1", 0.5)
        first = await ledger.settle("k1", "acme", "r1", 0.1, {"specialist": "math"})
        again = await ledger.settle("k1", "acme", "r1", 0.1, {"specialist": "math"})
        records = await client.xrange("mixserve:ledger:records")
        tenant = await ledger.spend("tenant", "acme")
        key = await ledger.spend("key", "k1")
        await client.aclose()
        return first, again, records, tenant, key

    first, again, records, tenant, key = asyncio.run(scenario())
    assert (first, again) == (True, False)
    assert len(records) == 1 and records[0][1][b"specialist"] == b"math"
    assert tenant.total_usd == pytest.approx(0.1) and key.reserved_usd == 0


def test_an_abandoned_reservation_expires_and_frees_the_budget(redis_url):
    async def scenario():
        client = async_client(redis_url)
        ledger = Ledger(client, reservation_ttl_s=0.2)
        await ledger.reserve("k1", 1.0, "crashed", 0.8)  # its gateway dies: never settled
        with pytest.raises(APIError, match=r"\$0.800000 held"):
            await ledger.reserve("k1", 1.0, "next", 0.5)
        await asyncio.sleep(0.3)
        await ledger.reserve("k1", 1.0, "later", 0.5)
        spend = await ledger.spend("key", "k1")
        await client.aclose()
        return spend

    assert asyncio.run(scenario()).reserved_usd == pytest.approx(0.5)
