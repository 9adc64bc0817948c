"""The response cache against a real Redis server (started here, stopped after)."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from orchestrator.runtime import start_redis
from orchestrator.serving.cache import ResponseCache, cache_key


@pytest.fixture()
def redis_url(redis_server):
    return redis_server.url


PAYLOAD = {
    "messages": [["user", "hi"]],
    "passages": [],
    "max_tokens": 5,
    "temperature": 0,
    "top_p": 1.0,
    "stop": [],
    "seed": None,
}


def test_key_depends_on_everything_that_decides_the_answer():
    base = cache_key("code", "v1", PAYLOAD)
    assert base == cache_key("code", "v1", dict(PAYLOAD))
    assert base != cache_key("math", "v1", PAYLOAD)
    assert base != cache_key("code", "v2", PAYLOAD)
    assert base != cache_key("code", "v1", {**PAYLOAD, "max_tokens": 6})
    assert base != cache_key("code", "v1", {**PAYLOAD, "passages": [["a", "b"]]})


async def test_round_trip_ttl_and_corrupt_entries(redis_url):
    client = aioredis.Redis.from_url(redis_url)
    cache = ResponseCache(client, ttl_s=30)
    key = cache_key("code", "v1", PAYLOAD)
    assert await cache.get(key) is None
    await cache.put(key, {"text": "hello", "prompt_tokens": 1})
    assert await cache.get(key) == {"text": "hello", "prompt_tokens": 1}
    assert 0 < await client.ttl(key) <= 30
    await client.set(key, b"{broken")
    assert await cache.get(key) is None
    await client.aclose()


async def test_redis_outage_does_not_fail_callers(tmp_path):
    server = start_redis(tmp_path / "r2")
    client = aioredis.Redis.from_url(server.url, socket_timeout=1, socket_connect_timeout=1)
    cache = ResponseCache(client, ttl_s=30)
    server.stop()
    assert await cache.get("k") is None
    await cache.put("k", {"text": "x"})  # logged, not raised
    assert cache.failures == 2  # both met the outage (a healthy empty cache counts none)
    await client.aclose()


def test_a_redis_that_cannot_start_is_reported_with_its_own_words(tmp_path, redis_url):
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    with pytest.raises(RuntimeError, match="redis-server exited"):
        start_redis(tmp_path / "second", port=port)  # the port is taken
