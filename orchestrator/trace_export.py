"""Where finished spans go: a bounded store in Redis, a rotating JSONL file, OTLP.

Exporters run in the batch processor's thread, never on a request's path, and each
swallows its own failures (logged): a trace store that is down must not fail requests.

**Redis store.** A trace's spans are a list ``mixserve:traces:spans:<trace id>``; the
gateway's root span also writes the index ``mixserve:traces:req:<tenant>:<request id>``
→ trace id, so a tenant can only ever find its own requests' traces. Both expire after
``ttl_s``; a sorted set of recent trace ids keeps at most ``max_traces`` of them, the
oldest dropped first.

**JSONL file.** Every process of the node appends to the same file; a lock file
(``flock``) serializes writers and rotation (``spans.jsonl`` → ``.1`` → … → ``.N``), so
lines are never torn or lost across a rotation.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from orchestrator.log_throttle import Throttled

logger = logging.getLogger(__name__)
throttled = Throttled(logger)
PREFIX = "mixserve:traces:"
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


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """A span as the trace API and the JSONL file show it (times in Unix seconds)."""
    context = span.get_span_context()
    assert context is not None  # SDK spans always have one
    resource = span.resource.attributes
    return {
        "name": span.name,
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_id": f"{span.parent.span_id:016x}" if span.parent else None,
        "kind": span.kind.name.lower(),
        "start": (span.start_time or 0) / 1e9,
        "end": (span.end_time or 0) / 1e9,
        "status": span.status.status_code.name.lower(),
        "attributes": {k: _plain(v) for k, v in (span.attributes or {}).items()},
        "component": resource.get("mixserve.component"),
        "instance": resource.get("service.instance.id"),
    }


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


class RedisSpanExporter(SpanExporter):
    def __init__(self, url: str, max_traces: int, ttl_s: int) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.max_traces = max_traces
        self.ttl_s = ttl_s
        self._trim = self.client.register_script(_TRIM)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            self._write([span_record(s) for s in spans])
        except Exception as exc:  # noqa: BLE001 - see the module docstring
            throttled.warning("%d spans not stored in Redis: %s", len(spans), exc)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def _write(self, records: list[dict[str, Any]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        traces: dict[str, float] = {}  # trace id -> its earliest span's start
        for r in records:
            traces[r["trace_id"]] = min(r["start"], traces.get(r["trace_id"], r["start"]))
        for record in records:
            name = f"{PREFIX}spans:{record['trace_id']}"
            pipe.rpush(name, json.dumps(record))
            attrs = record["attributes"]
            if record["parent_id"] is None and "mixserve.tenant" in attrs:
                index = f"{PREFIX}req:{attrs['mixserve.tenant']}:{attrs['mixserve.request_id']}"
                pipe.set(index, record["trace_id"], ex=self.ttl_s)
        for trace_id in traces:
            name = f"{PREFIX}spans:{trace_id}"
            pipe.ltrim(name, 0, MAX_SPANS_PER_TRACE - 1)
            pipe.expire(name, self.ttl_s)
        pipe.zadd(f"{PREFIX}recent", traces, lt=True)  # the oldest traces go first
        self._trim(keys=[f"{PREFIX}recent"], args=[self.max_traces, f"{PREFIX}spans:"], client=pipe)
        pipe.execute()

    def shutdown(self) -> None:
        self.client.close()


class JsonlSpanExporter(SpanExporter):
    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self.lock_path = path.with_name(f".{path.name}.lock")
        self._local = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        data = "".join(json.dumps(span_record(s)) + "\n" for s in spans).encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._local, open(self.lock_path, "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    self._rotate_if_full()
                    fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                    try:
                        os.write(fd, data)
                    finally:
                        os.close(fd)
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
        except OSError as exc:
            throttled.warning("%d spans not written to %s: %s", len(spans), self.path, exc)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def _rotate_if_full(self) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size < self.max_bytes:
            return
        for n in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{n + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))


def otlp_exporter(endpoint: str, protocol: str, headers: str | None) -> SpanExporter:
    """An OTLP span exporter: ``grpc``, or ``http/protobuf`` (the default)."""
    pairs = dict(p.split("=", 1) for p in (headers or "").split(",") if "=" in p)
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter(
            endpoint=endpoint, insecure=endpoint.startswith("http://"), headers=pairs or None
        )
    if protocol != "http/protobuf":
        raise ValueError(f"OTLP protocol {protocol!r} is not supported: use grpc or http/protobuf")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint, headers=pairs or None)
