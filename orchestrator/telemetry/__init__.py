"""Telemetry: request tracing (OpenTelemetry), the trace store, metrics, dashboards.

Below billing and serving; imports nothing of them. Public API: ``Tracing``,
``TraceOptions``, ``RequestTrace``, ``ServiceMetrics``, ``Throttled``.
"""

from orchestrator.telemetry.log_throttle import Throttled
from orchestrator.telemetry.metrics import ServiceMetrics
from orchestrator.telemetry.request_trace import RequestTrace
from orchestrator.telemetry.tracing import TraceOptions, Tracing

__all__ = ["RequestTrace", "ServiceMetrics", "Throttled", "TraceOptions", "Tracing"]
