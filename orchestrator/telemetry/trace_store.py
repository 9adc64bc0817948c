"""The trace store in Redis: the one owner of its key layout, for writing (the span
exporter, ``orchestrator.telemetry.export``) and reading (``GET /v1/traces/{request_id}``).

A trace's spans are a list ``mixserve:traces:spans:<trace id>``; the gateway's root span
also writes the index ``mixserve:traces:req:<tenant>:<request id>`` → trace id, so a
tenant can only ever find its own requests' traces. Both expire after ``ttl_s``; a
sorted set of recent trace ids keeps at most ``max_traces`` of them, the oldest dropped
first.
"""

from __future__ import annotations

import json
from typing import Any

from orchestrator.errors import APIError
from orchestrator.redis_clients import text

PREFIX = "mixserve:traces:"
RECENT = f"{PREFIX}recent"
MAX_SPANS_PER_TRACE = 2000

# KEYS: the recent-traces zset. ARGV: traces kept, the span-list key prefix. Atomic, so
# exporters of many processes trimming at once never drop more than the excess.
_TRIM = """
local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[1])
if excess <= 0 then return 0 end
local oldest = redis.call('ZPOPMIN', KEYS[1], excess)
for i = 1, #oldest, 2 do redis.call('DEL', ARGV[2] .. oldest[i]) end
return excess
"""


def spans_key(trace_id: str) -> str:
    return f"{PREFIX}spans:{trace_id}"


def index_key(tenant: str, request_id: str) -> str:
    return f"{PREFIX}req:{tenant}:{request_id}"


class TraceWriter:
    """Writes span records (``export.span_record``) with a blocking client, from an
    exporter's thread."""

    def __init__(self, client: Any, max_traces: int, ttl_s: int) -> None:
        self.client = client
        self.max_traces = max_traces
        self.ttl_s = ttl_s
        self._trim = client.register_script(_TRIM)

    def write(self, records: list[dict[str, Any]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        traces: dict[str, float] = {}  # trace id -> its earliest span's start
        for r in records:
            traces[r["trace_id"]] = min(r["start"], traces.get(r["trace_id"], r["start"]))
        for record in records:
            pipe.rpush(spans_key(record["trace_id"]), json.dumps(record))
            attrs = record["attributes"]
            if record["parent_id"] is None and "mixserve.tenant" in attrs:
                index = index_key(attrs["mixserve.tenant"], attrs["mixserve.request_id"])
                pipe.set(index, record["trace_id"], ex=self.ttl_s)
        for trace_id in traces:
            pipe.ltrim(spans_key(trace_id), 0, MAX_SPANS_PER_TRACE - 1)
            pipe.expire(spans_key(trace_id), self.ttl_s)
        pipe.zadd(RECENT, traces, lt=True)  # the oldest traces go first
        self._trim(keys=[RECENT], args=[self.max_traces, spans_key("")], client=pipe)
        pipe.execute()


async def stored_trace(client: Any, tenant: str, request_id: str) -> dict[str, Any]:
    """The trace of the tenant's request, spans ordered by start; a 404 when there is
    none (unknown, expired, unsampled, not yet exported, or another tenant's)."""
    if client is None:
        raise APIError(404, "traces are not stored in this deployment", code="not_found")
    raw = await client.get(index_key(tenant, request_id))
    spans: list[Any] = []
    trace_id = ""
    if raw is not None:
        trace_id = text(raw)
        spans = await client.lrange(spans_key(trace_id), 0, -1)
    if not spans:
        raise APIError(
            404,
            f"no trace for request {request_id!r}: unknown, expired, or not exported yet "
            "(spans arrive within a second or so of the answer)",
            code="not_found",
        )
    records = sorted((json.loads(s) for s in spans), key=lambda r: (r["start"], r["end"]))
    return {"object": "trace", "request_id": request_id, "trace_id": trace_id, "spans": records}
