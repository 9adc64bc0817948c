"""Tracing: context across processes, the gateway's spans and their attributes, what is
kept out of spans, the JSONL file under concurrent writers, OTLP settings."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from orchestrator.errors import APIError
from orchestrator.settings import get_settings
from orchestrator.telemetry.export import JsonlSpanExporter
from orchestrator.telemetry.request_trace import RequestTrace
from orchestrator.telemetry.tracing import TraceOptions, Tracing, carrier, trace_id_of


def memory_tracing(component: str, **options: object) -> tuple[Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing = Tracing(TraceOptions(**options), component, [SimpleSpanProcessor(exporter)])  # type: ignore[arg-type]
    return tracing, exporter


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {s.name: s for s in spans}


def test_a_carrier_joins_spans_of_two_processes_into_one_trace():
    gateway, g_spans = memory_tracing("gateway")
    router, r_spans = memory_tracing("router")
    with gateway.span("mixserve.routing", kind=SpanKind.CLIENT) as call:
        with router.span("mixserve.router.route", carrier(call), SpanKind.SERVER):
            pass
    [client] = g_spans.get_finished_spans()
    [server] = r_spans.get_finished_spans()
    assert server.context.trace_id == client.context.trace_id
    assert server.parent is not None and server.parent.span_id == client.context.span_id
    assert server.resource.attributes["mixserve.component"] == "router"


def test_an_unsampled_request_records_nothing_downstream():
    gateway, g_spans = memory_tracing("gateway", sample_ratio=0.0)
    router, r_spans = memory_tracing("router")  # samples everything of its own
    root = gateway.start("chat auto")
    with router.span("mixserve.router.route", carrier(root)):
        pass
    root.end()
    assert trace_id_of(root) == ""
    assert not g_spans.get_finished_spans() and not r_spans.get_finished_spans()


def test_disabled_tracing_is_a_no_op():
    tracing = Tracing(TraceOptions(enabled=False), "gateway")
    trace = RequestTrace(tracing, "chat", "req-1", "/v1/chat/completions")
    assert trace.trace_id == "" and carrier(trace.root) == {}
    trace.end()


def answer_usage() -> dict[str, object]:
    cost = {"total_usd": 0.5, "specialists_usd": 0.4, "router_usd": 0.07, "retrieval_usd": 0.03}
    return {"prompt_tokens": 11, "completion_tokens": 7, "cost": cost}


def traced_request(record_content: bool) -> tuple[RequestTrace, InMemorySpanExporter]:
    tracing, spans = memory_tracing("gateway", record_content=record_content)
    trace = RequestTrace(tracing, "chat", "req-42", "/v1/chat/completions")
    trace.caller("acme", "0123456789ab")
    trace.request("auto", {"max_tokens": 64, "temperature": 0.0}, [("user", "secret question")])
    routing = {"choice": "math", "confidence": 0.8, "scores": {"math": 0.9, "code": 0.1}}
    trace.routed(routing, [{"id": "docs/a.md#0"}])
    with trace.child("mixserve.ledger.settle"):
        pass
    meta = {
        "request_id": "req-42",
        "cached": False,
        "policy": {"name": "single", "reason": "", "calls": [{}]},
    }
    trace.answered("math", meta, answer_usage(), "stop", "secret answer")
    trace.first_token(0.25)
    trace.end(200)
    trace.end(500)  # ended once: the second call changes nothing
    return trace, spans


def test_the_root_span_carries_genai_and_mixserve_attributes():
    trace, exporter = traced_request(record_content=False)
    spans = by_name(exporter.get_finished_spans())
    root = spans["chat auto"]
    assert root.kind == SpanKind.SERVER and root.parent is None
    assert spans["mixserve.ledger.settle"].parent.span_id == root.context.span_id  # type: ignore[union-attr]
    attrs = dict(root.attributes or {})
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "auto" and attrs["gen_ai.response.model"] == "math"
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (11, 7)
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.response.time_to_first_chunk"] == 0.25
    assert attrs["mixserve.cost_usd"] == 0.5 and attrs["mixserve.tenant"] == "acme"
    assert attrs["mixserve.routing.score.math"] == 0.9
    assert attrs["mixserve.retrieval.source_ids"] == ("docs/a.md#0",)
    assert attrs["http.response.status_code"] == 200
    assert trace.trace_id == f"{root.context.trace_id:032x}"


def test_prompt_and_completion_text_stay_out_unless_configured():
    _, exporter = traced_request(record_content=False)
    text = json.dumps([dict(s.attributes or {}) for s in exporter.get_finished_spans()])
    assert "secret" not in text
    _, exporter = traced_request(record_content=True)
    root = by_name(exporter.get_finished_spans())["chat auto"]
    attrs = dict(root.attributes or {})
    assert "secret question" in str(attrs["gen_ai.input.messages"])
    assert "secret answer" in str(attrs["gen_ai.output.messages"])


@pytest.mark.parametrize(
    "exc, status", [(APIError(402, "no budget"), "402"), (RuntimeError("boom"), "500")]
)
def test_a_failed_request_is_marked_with_its_status(exc, status):
    tracing, exporter = memory_tracing("gateway")
    trace = RequestTrace(tracing, "chat", "req-1", "/v1/chat/completions")
    trace.fail(exc)
    [root] = exporter.get_finished_spans()
    assert root.status.status_code.name == "ERROR"
    assert (root.attributes or {})["error.type"] == status


def _write_spans(path: str, writer: int, batches: int) -> None:
    tracing, exporter = memory_tracing(f"w{writer}")
    jsonl = JsonlSpanExporter(Path(path), max_bytes=4000, backups=1000)
    for batch in range(batches):
        for i in range(5):
            with tracing.span(f"w{writer}-b{batch}-s{i}"):
                pass
        jsonl.export(exporter.get_finished_spans())
        exporter.clear()


def test_the_jsonl_file_rotates_without_losing_or_tearing_lines(tmp_path):
    path = tmp_path / "traces" / "spans.jsonl"
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_write_spans, args=(str(path), w, 20)) for w in range(4)]
    for p in writers:
        p.start()
    for p in writers:
        p.join(60)
        assert p.exitcode == 0
    files = sorted(path.parent.glob("spans.jsonl*"))
    assert len(files) > 5  # it rotated
    names = [json.loads(line)["name"] for f in files for line in f.read_text().splitlines()]
    expected = {f"w{w}-b{b}-s{i}" for w in range(4) for b in range(20) for i in range(5)}
    assert sorted(names) == sorted(expected)  # every span once, every line whole JSON
    biggest_batch = 5 * max(len(line) + 1 for f in files for line in f.read_text().splitlines())
    assert all(f.stat().st_size < 4000 + biggest_batch for f in files)


def test_rotation_keeps_only_the_configured_backups(tmp_path):
    path = tmp_path / "spans.jsonl"
    _write_spans_into(path, backups=2)
    assert sorted(p.name for p in tmp_path.glob("spans.jsonl*")) == [
        "spans.jsonl",
        "spans.jsonl.1",
        "spans.jsonl.2",
    ]


def _write_spans_into(path: Path, backups: int) -> None:
    tracing, exporter = memory_tracing("w")
    jsonl = JsonlSpanExporter(path, max_bytes=500, backups=backups)
    for batch in range(30):
        with tracing.span(f"b{batch}"):
            pass
        jsonl.export(exporter.get_finished_spans())
        exporter.clear()


@pytest.mark.parametrize(
    "env, endpoint, protocol",
    [
        ({}, None, "http/protobuf"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"},
            "http://c:4318/v1/traces",
            "http/protobuf",
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "http://c:4317",
            "grpc",
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:9/x",
            },
            "http://t:9/x",
            "http/protobuf",
        ),
    ],
)
def test_otlp_settings_follow_the_opentelemetry_variables(monkeypatch, env, endpoint, protocol):
    for name in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = get_settings()
    assert (settings.otlp_endpoint, settings.otlp_protocol) == (endpoint, protocol)


def test_an_unknown_otlp_protocol_is_refused():
    from orchestrator.telemetry.export import otlp_exporter

    with pytest.raises(ValueError, match="http/json"):
        otlp_exporter("http://c:4318", "http/json", None)
