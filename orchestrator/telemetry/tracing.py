"""Request tracing with OpenTelemetry, in every process of the service.

Each deployment (gateway, router, retriever, specialists) builds one ``Tracing`` from the
same ``TraceOptions``, passed through ``bind`` so that replicas on other nodes trace
exactly as the process that built the app says. A request's trace context crosses
deployments as a W3C ``traceparent`` carrier in the call's arguments, so one request
is one trace however many processes and nodes it touches.

Spans leave each process through batch processors (none is exported on a request's
path) to up to three places: a bounded store in Redis, gathered from every process,
behind ``GET /v1/traces/{request_id}``; a rotating JSONL file (the embedded default);
and an OTLP collector when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.

The providers here are the service's own and never the global one, so Ray Serve's
experimental tracing, or an application's, cannot take its spans or be taken over.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation import set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from orchestrator.config import MixserveConfig
from orchestrator.settings import Settings
from orchestrator.telemetry import attributes as semconv

logger = logging.getLogger(__name__)
_PROPAGATOR = TraceContextTextMapPropagator()
Carrier = dict[str, str]
AttributeValue = str | bool | int | float | list[str] | list[float] | list[int]


@dataclass(frozen=True)
class TraceOptions:
    """Everything a process needs to trace; plain values, so it crosses ``bind``."""

    enabled: bool = True
    sample_ratio: float = 1.0
    record_content: bool = False
    service_namespace: str = "mixserve"
    redis_url: str | None = None
    store_max_traces: int = 10_000
    store_ttl_s: int = 86_400
    file_path: str | None = None
    file_max_bytes: int = 64 * 1024**2
    file_backups: int = 5
    export_delay_ms: int = 250
    otlp_endpoint: str | None = None
    otlp_protocol: str = "http/protobuf"
    otlp_headers: str | None = None

    @classmethod
    def of(cls, config: MixserveConfig, settings: Settings, redis_url: str | None) -> TraceOptions:
        t = config.tracing
        path = settings.state_dir / "traces" / config.name / "spans.jsonl"
        return cls(
            enabled=t.enabled,
            sample_ratio=t.sample_ratio,
            record_content=t.record_content,
            service_namespace=config.name,
            redis_url=redis_url if t.store_max_traces > 0 else None,
            store_max_traces=t.store_max_traces,
            store_ttl_s=t.store_ttl_s,
            file_path=str(path) if t.file else None,
            file_max_bytes=int(t.file_max_mb * 1024**2),
            file_backups=t.file_backups,
            export_delay_ms=t.export_delay_ms,
            otlp_endpoint=settings.otlp_endpoint,
            otlp_protocol=settings.otlp_protocol,
            otlp_headers=settings.otlp_headers,
        )


def _exporters(options: TraceOptions) -> list[SpanExporter]:
    from orchestrator.telemetry.export import JsonlSpanExporter, RedisSpanExporter, otlp_exporter

    out: list[SpanExporter] = []
    if options.redis_url:
        out.append(
            RedisSpanExporter(options.redis_url, options.store_max_traces, options.store_ttl_s)
        )
    if options.file_path:
        out.append(
            JsonlSpanExporter(Path(options.file_path), options.file_max_bytes, options.file_backups)
        )
    if options.otlp_endpoint:
        out.append(
            otlp_exporter(options.otlp_endpoint, options.otlp_protocol, options.otlp_headers)
        )
    return out


class Tracing:
    """One process's tracer. ``processors`` replace the exporters the options name (tests
    pass a ``SimpleSpanProcessor`` over an ``InMemorySpanExporter``)."""

    def __init__(
        self,
        options: TraceOptions | None,
        component: str,
        processors: list[SpanProcessor] | None = None,
    ) -> None:
        options = options or TraceOptions(enabled=False)
        self.options = options
        self.component = component
        self.provider: TracerProvider | None = None
        if not options.enabled:
            self.tracer: trace.Tracer = trace.NoOpTracer()
            return
        resource = Resource.create(
            {
                semconv.SERVICE_NAME: "mixserve",
                semconv.SERVICE_NAMESPACE: options.service_namespace,
                semconv.SERVICE_INSTANCE_ID: f"{component}-{socket.gethostname()}-{os.getpid()}",
                "host.name": socket.gethostname(),
                "process.pid": os.getpid(),
                "mixserve.component": component,
            }
        )
        sampler = ParentBased(TraceIdRatioBased(options.sample_ratio))
        self.provider = TracerProvider(resource=resource, sampler=sampler)
        if processors is None:
            delay = options.export_delay_ms
            processors = [
                BatchSpanProcessor(e, schedule_delay_millis=delay, max_queue_size=8192)
                for e in _exporters(options)
            ]
        for processor in processors:
            self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("mixserve")

    @property
    def record_content(self) -> bool:
        return self.options.record_content

    def start(
        self,
        name: str,
        parent: Span | Carrier | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> Span:
        """A started span under ``parent`` (a span of this process, or the carrier of
        one in another); with no parent it starts a trace."""
        return self.tracer.start_span(
            name, context=_context_of(parent), kind=kind, attributes=attributes
        )

    @contextmanager
    def span(
        self,
        name: str,
        parent: Span | Carrier | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> Iterator[Span]:
        """A span for the block: an exception leaves it marked as an error."""
        span = self.start(name, parent, kind, attributes)
        try:
            yield span
        except BaseException as exc:
            fail(span, exc)
            raise
        finally:
            span.end()

    def force_flush(self, timeout_ms: int = 5000) -> None:
        if self.provider is not None:
            self.provider.force_flush(timeout_ms)

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()
            self.provider = None


def _context_of(parent: Span | Carrier | None) -> Context | None:
    if parent is None:
        return None
    if isinstance(parent, Span):
        return set_span_in_context(parent)
    return _PROPAGATOR.extract(parent)


def carrier(span: Span) -> Carrier:
    """The W3C trace context of ``span``, to pass to another deployment's call (empty
    when the span is not recording)."""
    out: Carrier = {}
    if span.get_span_context().is_valid:
        _PROPAGATOR.inject(out, context=set_span_in_context(span))
    return out


def trace_id_of(span: Span) -> str:
    """The span's trace id, or "" when the trace is not recorded (not sampled, or off)."""
    context = span.get_span_context()
    recorded = context.is_valid and context.trace_flags.sampled
    return f"{context.trace_id:032x}" if recorded else ""


def fail(span: Span, exc: BaseException, status: int | None = None) -> None:
    """Mark ``span`` failed by ``exc`` (``error.type`` is the HTTP status when known)."""
    span.set_attribute(semconv.ERROR_TYPE, str(status) if status else type(exc).__name__)
    span.set_status(Status(StatusCode.ERROR, str(exc)[:500]))


_WHERE: dict[str, AttributeValue] = {}


def where() -> dict[str, AttributeValue]:
    """The node and replica of the calling Serve replica (empty outside one); looked up
    once per process, since neither changes while it lives."""
    if _WHERE:
        return dict(_WHERE)
    try:
        import ray
        from ray import serve

        node = ray.get_runtime_context().get_node_id()
        replica = serve.get_replica_context().replica_id.unique_id
    except Exception:  # noqa: BLE001 - not in a replica (unit tests): nothing to say
        logger.debug("no replica context")
        return {}
    _WHERE.update({"mixserve.node": node, "mixserve.replica": replica})
    return dict(_WHERE)
