"""Per-key rate limits against a real Redis server (started here, stopped after)."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from orchestrator.billing.keys import KeyRecord
from orchestrator.billing.limits import RateLimiter
from orchestrator.errors import APIError


@pytest.fixture()
def server(redis_server):
    return redis_server


def key(rpm=None, tpm=None):
    return KeyRecord("0123456789ab", "acme", time.time(), None, rpm, tpm)


async def outcomes(limiter, record, n):
    results = await asyncio.gather(
        *(limiter.admit(record, f"r{i}") for i in range(n)), return_exceptions=True
    )
    return [r for r in results if isinstance(r, APIError)], [r for r in results if r is None]


def test_requests_per_minute_over_a_sliding_window(server):
    async def scenario():
        client = aioredis.Redis.from_url(server.url)
        limiter = RateLimiter(client, window_s=1.5)
        refused, admitted = await outcomes(limiter, key(rpm=5), 20)  # concurrently
        assert len(admitted) == 5 and len(refused) == 15
        err = refused[0]
        assert err.status == 429 and err.code == "rate_limit_exceeded"
        assert err.retry_after_s in (1, 2) and "requests per minute" in err.message
        await asyncio.sleep(1.6)  # the window slides past them
        await limiter.admit(key(rpm=5), "later")
        await client.aclose()

    asyncio.run(scenario())


def test_tokens_per_minute_count_finished_requests(server):
    async def scenario():
        client = aioredis.Redis.from_url(server.url)
        limiter = RateLimiter(client, window_s=60)
        record = key(tpm=50)
        await limiter.admit(record, "a")
        await limiter.spend_tokens(record, "a", 30)
        await limiter.admit(record, "b")  # 30 < 50
        await limiter.spend_tokens(record, "b", 30)
        with pytest.raises(APIError, match="tokens per minute"):
            await limiter.admit(record, "c")
        await client.aclose()

    asyncio.run(scenario())


def test_keys_without_limits_write_nothing_and_an_outage_lets_requests_through(server):
    async def scenario():
        client = aioredis.Redis.from_url(server.url)
        limiter = RateLimiter(client)
        for i in range(10):
            await limiter.admit(key(), f"r{i}")
        assert await client.dbsize() == 0
        await limiter.admit(key(rpm=1), "before")
        assert limiter.failures == 0
        server.stop()
        await limiter.admit(key(rpm=1), "during-outage")  # over its limit, but fails open
        assert limiter.failures == 1  # the outage was met, not an admission by the limit
        await client.aclose()

    asyncio.run(scenario())
