"""The gateway's side of one request's trace: its root span and the spans under it.

The root (``chat <model>``, kind server) lives from the request's arrival to its last
byte. Under it: routing and retrieval (each with the span the router or retriever
replica makes under it), the cache lookup, the budget reservation, one span per
specialist call (``chat <specialist>``, kind client, parent of the replica's
``generate`` span) and the ledger settlement. Attribute names follow the OpenTelemetry
GenAI conventions where one exists, ``mixserve.*`` otherwise.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry.trace import Span, SpanKind

from orchestrator.errors import http_status
from orchestrator.telemetry import attributes as semconv
from orchestrator.telemetry.tracing import (
    AttributeValue,
    Carrier,
    Tracing,
    carrier,
    fail,
    trace_id_of,
)


def _messages(pairs: list[tuple[str, str]]) -> str:
    """Messages in the GenAI conventions' JSON shape (recorded only when config says)."""
    return json.dumps([{"role": r, "parts": [{"type": "text", "content": t}]} for r, t in pairs])


class RequestTrace:
    def __init__(self, tracing: Tracing, operation: str, request_id: str, route: str) -> None:
        self.tracing = tracing
        self.operation = operation
        self.request_id = request_id
        self.started = time.monotonic()
        self.root = tracing.start(
            operation,
            kind=SpanKind.SERVER,
            attributes={
                semconv.GEN_AI_OPERATION_NAME: operation,
                semconv.GEN_AI_PROVIDER_NAME: "mixserve",
                "mixserve.request_id": request_id,
                semconv.HTTP_ROUTE: route,
            },
        )
        self.trace_id = trace_id_of(self.root)
        self._ended = False

    # ---- the request --------------------------------------------------------------
    def caller(self, tenant: str, key_id: str | None) -> None:
        self.root.set_attribute("mixserve.tenant", tenant)
        if key_id:
            self.root.set_attribute("mixserve.key_id", key_id)

    def request(
        self, model: str, sampling: Mapping[str, Any], messages: list[tuple[str, str]]
    ) -> None:
        self.root.update_name(f"{self.operation} {model}")
        self.root.set_attribute(semconv.GEN_AI_REQUEST_MODEL, model)
        for name, attribute in semconv.REQUEST_SAMPLING.items():
            if sampling.get(name) is not None:
                self.root.set_attribute(attribute, sampling[name])
        if self.tracing.record_content:
            self.root.set_attribute(semconv.GEN_AI_INPUT_MESSAGES, _messages(messages))

    def routed(self, routing: Mapping[str, Any], sources: list[dict[str, Any]]) -> None:
        attrs: dict[str, AttributeValue] = {
            "mixserve.routing.choice": str(routing["choice"]),
            "mixserve.routing.pinned": bool(routing.get("pinned", False)),
            "mixserve.routing.confidence": float(routing.get("confidence", 1.0)),
            "mixserve.retrieval.source_ids": [str(s["id"]) for s in sources],
        }
        for name, score in (routing.get("scores") or {}).items():
            attrs[f"mixserve.routing.score.{name}"] = float(score)
        self.root.set_attributes(attrs)

    def answered(
        self,
        specialist: str,
        meta: Mapping[str, Any],
        usage: Mapping[str, Any],
        finish_reason: str,
        text: str,
    ) -> None:
        policy = meta["policy"]
        cost = usage["cost"]
        attrs: dict[str, AttributeValue] = {
            semconv.GEN_AI_RESPONSE_MODEL: specialist,
            semconv.GEN_AI_RESPONSE_ID: f"chatcmpl-{meta['request_id']}",
            semconv.GEN_AI_RESPONSE_FINISH_REASONS: [finish_reason],
            semconv.GEN_AI_USAGE_INPUT_TOKENS: int(usage["prompt_tokens"]),
            semconv.GEN_AI_USAGE_OUTPUT_TOKENS: int(usage["completion_tokens"]),
            "mixserve.specialist": specialist,
            "mixserve.policy": str(policy["name"]),
            "mixserve.policy.calls": len(policy["calls"]),
            "mixserve.cached": bool(meta["cached"]),
            "mixserve.cost_usd": float(cost["total_usd"]),
            "mixserve.cost.specialists_usd": float(cost["specialists_usd"]),
            "mixserve.cost.router_usd": float(cost["router_usd"]),
            "mixserve.cost.retrieval_usd": float(cost["retrieval_usd"]),
        }
        if policy.get("reason"):
            attrs["mixserve.policy.reason"] = str(policy["reason"])
        if policy.get("method"):
            attrs["mixserve.answer.method"] = str(policy["method"])
        if self.tracing.record_content:
            attrs[semconv.GEN_AI_OUTPUT_MESSAGES] = _messages([("assistant", text)])
        self.root.set_attributes(attrs)

    def first_token(self, seconds: float) -> None:
        self.root.set_attribute(semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, seconds)

    # ---- spans under the root -----------------------------------------------------
    def start(
        self,
        name: str,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> Span:
        return self.tracing.start(name, self.root, kind, attributes)

    @contextmanager
    def child(
        self,
        name: str,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> Iterator[Span]:
        with self.tracing.span(name, self.root, kind, attributes) as span:
            yield span

    @staticmethod
    def carrier(span: Span) -> Carrier:
        return carrier(span)

    # ---- the end ------------------------------------------------------------------
    def fail(self, exc: BaseException) -> None:
        status = http_status(exc)
        fail(self.root, exc, status)
        self.end(status)

    def end(self, status: int = 200) -> None:
        if self._ended:
            return
        self._ended = True
        self.root.set_attribute(semconv.HTTP_RESPONSE_STATUS_CODE, status)
        self.root.end()
