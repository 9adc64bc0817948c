"""The cost ledger in Redis: budgets by reservation, spend counters, a record per request.

Before generating, a request whose key has a budget **reserves** its maximum possible
cost; the reservation is refused (402) when settled spend plus open reservations plus
this one would pass the budget. After the answer, the request **settles** its actual
cost: the reservation is released, the key's and the tenant's counters (total and per
UTC day) grow by the cost, and a record is appended to a capped stream. Both steps are
Lua scripts, so concurrent gateway replicas cannot overspend: settled spend never passes
the budget as long as each reservation bounds its request's cost.

Settlement is idempotent by a settlement id the gateway draws per request (a marker kept
for the retention period); it is not the request id, which clients may choose and repeat,
and a repeated one must neither share a reservation nor make a request free. A
reservation left by a gateway that died before settling expires and is released by the
next reservation of the same key. Amounts are integers of nano-USD (exact in Lua).

The key layout lives here alone: the gateway's ``Ledger`` (asynchronous) and the CLI's
``LedgerReader`` (blocking) both go through the functions below.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import APIError
from orchestrator.redis_clients import texts

PREFIX = "mixserve:ledger:"
RECORDS = f"{PREFIX}records"
NANO = 1_000_000_000


def spend_key(kind: str, name: str, day: str | None = None) -> str:
    """The spend hash of a key or tenant (``kind``), in total or on one UTC day."""
    return f"{PREFIX}spend:{kind}:{name}" + (f":{day}" if day else "")


def _reservations(key_id: str) -> list[str]:
    return [f"{PREFIX}resv:{key_id}", f"{PREFIX}resv-amounts:{key_id}"]


def _spend_of(raw: dict[Any, Any]) -> Spend:
    values = {k: int(v) for k, v in texts(raw).items()}
    return Spend(
        values.get("total", 0) / NANO,
        values.get("reserved", 0) / NANO,
        values.get("requests", 0),
    )


# KEYS: spend hash of the key, reservation zset (member -> expiry), amounts hash.
# ARGV: budget (nano), amount (nano), request id, now, expiry.
_RESERVE = """
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
for _, rid in ipairs(expired) do
  local amount = tonumber(redis.call('HGET', KEYS[3], rid) or '0')
  redis.call('HDEL', KEYS[3], rid)
  redis.call('ZREM', KEYS[2], rid)
  redis.call('HINCRBY', KEYS[1], 'reserved', -amount)
end
if redis.call('ZSCORE', KEYS[2], ARGV[3]) then return 1 end
local total = tonumber(redis.call('HGET', KEYS[1], 'total') or '0')
local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved') or '0')
if total + reserved + tonumber(ARGV[2]) > tonumber(ARGV[1]) then return 0 end
redis.call('HINCRBY', KEYS[1], 'reserved', ARGV[2])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[3])
return 1
"""

# KEYS: settled marker, key spend, key day spend, tenant spend, tenant day spend,
# reservation zset, amounts hash, record stream.
# ARGV: amount (nano), retention s, stream max length, request id, then field, value...
_SETTLE = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then return 0 end
local held = tonumber(redis.call('HGET', KEYS[7], ARGV[4]) or '0')
if held > 0 then
  redis.call('HDEL', KEYS[7], ARGV[4])
  redis.call('ZREM', KEYS[6], ARGV[4])
  redis.call('HINCRBY', KEYS[2], 'reserved', -held)
end
for i = 2, 5 do
  redis.call('HINCRBY', KEYS[i], 'total', ARGV[1])
  redis.call('HINCRBY', KEYS[i], 'requests', 1)
end
redis.call('EXPIRE', KEYS[3], ARGV[2])
redis.call('EXPIRE', KEYS[5], ARGV[2])
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('XADD', KEYS[8], 'MAXLEN', '~', ARGV[3], '*', unpack(fields))
return 1
"""


def to_nano(usd: float) -> int:
    return round(usd * NANO)


def day_of(when: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(when))


@dataclass(frozen=True)
class Spend:
    total_usd: float
    reserved_usd: float
    requests: int


class Ledger:
    def __init__(
        self,
        client: Any,
        retention_s: int = 30 * 86400,
        max_records: int = 1_000_000,
        reservation_ttl_s: float = 900.0,
    ) -> None:
        self.client = client
        self.retention_s = retention_s
        self.max_records = max_records
        self.reservation_ttl_s = reservation_ttl_s
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)

    async def reserve(
        self, key_id: str, budget_usd: float, settle_id: str, max_cost_usd: float
    ) -> None:
        """Hold ``max_cost_usd`` of the key's budget for the request ``settle_id`` names,
        or raise a 402."""
        now = time.time()
        keys = [spend_key("key", key_id), *_reservations(key_id)]
        args = [
            to_nano(budget_usd),
            to_nano(max_cost_usd),
            settle_id,
            now,
            now + self.reservation_ttl_s,
        ]
        if int(await self._reserve(keys=keys, args=args)) == 1:
            return
        spend = await self.spend("key", key_id)
        raise APIError(
            402,
            f"the budget of key {key_id} (${budget_usd:.2f}) does not cover this request: "
            f"${spend.total_usd:.6f} spent, ${spend.reserved_usd:.6f} held by requests in "
            f"flight, up to ${max_cost_usd:.6f} for this one",
            type="insufficient_quota",
            code="budget_exceeded",
        )

    async def settle(
        self,
        key_id: str,
        tenant: str,
        request_id: str,
        cost_usd: float,
        record: dict[str, Any],
        settle_id: str | None = None,
    ) -> bool:
        """Count the actual cost and append the record; False if ``settle_id`` (by
        default the request id) was settled before."""
        settle_id = settle_id or request_id
        now = time.time()
        day = day_of(now)
        keys = [
            f"{PREFIX}settled:{settle_id}",
            spend_key("key", key_id),
            spend_key("key", key_id, day),
            spend_key("tenant", tenant),
            spend_key("tenant", tenant, day),
            *_reservations(key_id),
            RECORDS,
        ]
        fields = {
            "request_id": request_id,
            "tenant": tenant,
            "key_id": key_id,
            "cost_usd": f"{cost_usd:.9f}",
            "time": f"{now:.3f}",
            **record,
        }
        flat = [str(x) for pair in fields.items() for x in pair]
        args = [to_nano(cost_usd), self.retention_s, self.max_records, settle_id, *flat]
        return int(await self._settle(keys=keys, args=args)) == 1

    async def spend(self, kind: str, name: str, day: str | None = None) -> Spend:
        """Settled spend of a key or tenant (``kind``), in total or on one UTC day."""
        return _spend_of(await self.client.hgetall(spend_key(kind, name, day)))


class LedgerReader:
    """The ledger read with a blocking client (``mixserve costs``, tests)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def spend(self, kind: str, name: str, day: str | None = None) -> Spend:
        return _spend_of(self.client.hgetall(spend_key(kind, name, day)))

    def has_spent(self, tenant: str) -> bool:
        """Whether the tenant has any settled request on record."""
        return bool(self.client.exists(spend_key("tenant", tenant)))

    def records(self, since: float | None = None) -> list[dict[str, str]]:
        """Request records in order, from Unix time ``since`` (all of them without)."""
        start = f"{int(since * 1000)}-0" if since is not None else "-"
        return [texts(fields) for _, fields in self.client.xrange(RECORDS, min=start, max="+")]
