"""Where finished spans go: a bounded store in Redis, a rotating JSONL file, OTLP.

Exporters run in the batch processor's thread, never on a request's path, and each
swallows its own failures (logged): a trace store that is down must not fail requests.

**Redis store.** Through ``trace_store.TraceWriter``, which owns the key layout.

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

from orchestrator.redis_clients import sync_client
from orchestrator.telemetry.attributes import SERVICE_INSTANCE_ID
from orchestrator.telemetry.log_throttle import Throttled
from orchestrator.telemetry.trace_store import TraceWriter

logger = logging.getLogger(__name__)
throttled = Throttled(logger)


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """A span as the trace API and the JSONL file show it (times in Unix seconds)."""
    context = span.get_span_context()
    if context is None:  # never for SDK spans; a malformed one is not exported
        raise ValueError(f"span {span.name!r} has no context")
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
        "instance": resource.get(SERVICE_INSTANCE_ID),
    }


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


class RedisSpanExporter(SpanExporter):
    def __init__(self, url: str, max_traces: int, ttl_s: int) -> None:
        self.client = sync_client(url)
        self.store = TraceWriter(self.client, max_traces, ttl_s)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            self.store.write([span_record(s) for s in spans])
        except Exception as exc:  # noqa: BLE001 - see the module docstring
            throttled.warning("%d spans not stored in Redis: %s", len(spans), exc)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

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
