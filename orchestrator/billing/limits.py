"""Per-key rate limits in Redis: requests and tokens per minute, over a sliding window.

Each key has two sorted sets scored by time: one member per admitted request
(``…:req``) and one per finished request carrying its tokens (``…:tok``). A Lua script
drops what is older than the window, then admits the request only if both the request
count and the token sum are under their limits, all atomically, so concurrent gateway
replicas never admit past a limit. Tokens are known only once an answer is done, so the
token limit can be overrun by the requests already in flight when it is reached (each
one's tokens are still counted, and hold the next requests back).

A Redis failure lets requests through (logged): a rate limit protects capacity, and
an outage of the limiter must not become an outage of the service.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from typing import Any

from orchestrator.billing.keys import KeyRecord
from orchestrator.errors import APIError
from orchestrator.redis_clients import text
from orchestrator.telemetry.log_throttle import Throttled

logger = logging.getLogger(__name__)
throttled = Throttled(logger)
PREFIX = "mixserve:limits:"
WINDOW_S = 60.0

# KEYS: requests zset, tokens zset. ARGV: now, window, rpm (0 = none), tpm (0 = none),
# a unique member. Returns {1, '0', ''} when admitted, else {0, seconds until a slot
# frees, 'rpm' or 'tpm'}.
_ADMIT = """
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local rpm, tpm = tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
if rpm > 0 and redis.call('ZCARD', KEYS[1]) >= rpm then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, tostring(tonumber(oldest[2]) + window - now), 'rpm'}
end
if tpm > 0 then
  local used, entries = 0, redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
  for i = 1, #entries, 2 do
    used = used + tonumber(string.match(entries[i], ':(%d+)$'))
  end
  if used >= tpm then
    return {0, tostring(tonumber(entries[2]) + window - now), 'tpm'}
  end
end
redis.call('ZADD', KEYS[1], now, ARGV[5])
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
return {1, '0', ''}
"""


class RateLimiter:
    def __init__(self, client: Any, window_s: float = WINDOW_S) -> None:
        self.client = client
        self.window_s = window_s
        self._admit = client.register_script(_ADMIT)
        self.failures = 0  # Redis errors met, each of which let a request through

    def _keys(self, key: KeyRecord) -> list[str]:
        return [f"{PREFIX}{key.key_id}:req", f"{PREFIX}{key.key_id}:tok"]

    async def admit(self, key: KeyRecord, request_id: str) -> None:
        """Return if ``key`` may make this request now; else raise a 429 with Retry-After."""
        if not key.rpm and not key.tpm:
            return
        try:
            member = f"{request_id}:{uuid.uuid4().hex[:8]}"  # client ids may repeat
            args = [time.time(), self.window_s, key.rpm or 0, key.tpm or 0, member]
            admitted, wait, limit = await self._admit(keys=self._keys(key), args=args)
        except Exception as exc:  # noqa: BLE001 - fail open, see the module docstring
            self.failures += 1
            throttled.warning("rate limiter unavailable, request let through: %s", exc)
            return
        if int(admitted) == 1:
            return
        seconds = max(1, math.ceil(float(wait)))
        what = "requests" if text(limit) == "rpm" else "tokens"
        raise APIError(
            429,
            f"rate limit of key {key.key_id} reached ({what} per minute); retry in {seconds} s",
            type="rate_limit_error",
            code="rate_limit_exceeded",
            retry_after_s=seconds,
        )

    async def spend_tokens(self, key: KeyRecord, request_id: str, tokens: int) -> None:
        """Count a finished request's tokens against the key's tokens per minute."""
        if not key.tpm or tokens <= 0:
            return
        name = self._keys(key)[1]
        try:
            member = f"{request_id}:{uuid.uuid4().hex[:8]}:{int(tokens)}"
            await self.client.zadd(name, {member: time.time()})
            await self.client.pexpire(name, int(self.window_s * 1000))
        except Exception as exc:  # noqa: BLE001
            self.failures += 1
            throttled.warning("token count of %s not recorded: %s", request_id, exc)
