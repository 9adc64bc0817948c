"""Calls from the gateway to specialist deployments, under one request's deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import Span, SpanKind

from orchestrator.errors import APIError, from_exception, http_status
from orchestrator.policies import CallFailed
from orchestrator.serving.plan import Answer
from orchestrator.serving.replica_router import EngineRequest
from orchestrator.telemetry import attributes as semconv
from orchestrator.telemetry.tracing import carrier, fail

if TYPE_CHECKING:
    from orchestrator.telemetry.request_trace import RequestTrace

# what a call cost: (specialist, prompt tokens, completion tokens, busy seconds) -> USD
Pricer = Callable[[str, int, int, float], float]

# Failures another specialist may not share: a cascade escalates past them, an
# ensemble drops the candidate. Anything else (bad input, the deadline) fails the request.
_RECOVERABLE = (500, 503)


def _cancel(gen: Any) -> None:
    """Cancel a Serve response stream; one that already failed (e.g. refused by
    back-pressure) raises its error again on cancel, which must not replace ours."""
    try:
        gen.cancel()
    except Exception:  # noqa: BLE001 - nothing left to cancel
        pass


class SpecialistCalls:
    """Every call of one request shares ``deadline`` (event-loop time): a specialist
    that stalls mid-answer ends the request with a timeout error instead of a hang."""

    def __init__(
        self,
        handles: Mapping[str, Any],
        request_id: str,
        deadline: float,
        trace: RequestTrace | None = None,
        pricer: Pricer | None = None,
    ) -> None:
        self.handles = handles
        self.request_id = request_id
        self.deadline = deadline
        self.trace = trace
        self.pricer = pricer
        self.count = 0

    def _span(self, specialist: str, payload: dict[str, Any]) -> Span | None:
        if self.trace is None:
            return None
        self.count += 1
        return self.trace.start(
            f"chat {specialist}",
            SpanKind.CLIENT,
            {
                semconv.GEN_AI_OPERATION_NAME: "chat",
                semconv.GEN_AI_REQUEST_MODEL: specialist,
                semconv.GEN_AI_REQUEST_MAX_TOKENS: int(payload["max_tokens"]),
                "mixserve.specialist": specialist,
                "mixserve.call.index": self.count,
            },
        )

    def _ended(
        self, span: Span | None, specialist: str, answer: Answer, ttft: float | None
    ) -> None:
        if span is None:
            return
        span.set_attributes(
            {
                semconv.GEN_AI_RESPONSE_MODEL: specialist,
                semconv.GEN_AI_RESPONSE_FINISH_REASONS: [answer.finish_reason],
                semconv.GEN_AI_USAGE_INPUT_TOKENS: answer.prompt_tokens,
                semconv.GEN_AI_USAGE_OUTPUT_TOKENS: answer.completion_tokens,
                "mixserve.busy_s": answer.busy_s,
            }
        )
        if ttft is not None:
            span.set_attribute(semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, ttft)
        if self.pricer is not None:
            cost = self.pricer(
                specialist, answer.prompt_tokens, answer.completion_tokens, answer.busy_s
            )
            span.set_attribute("mixserve.cost_usd", cost)

    def _remaining(self) -> float:
        remaining = self.deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise TimeoutError("request deadline passed")
        return remaining

    async def stream(
        self, specialist: str, payload: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        """Start the specialist stream and wait for its first chunk, so that errors (bad
        input the engine found, overload) surface here, before any response is sent.
        Closing the returned iterator (a client that went away) cancels the generation.
        The call's span (under the request's root) lasts until the stream ends."""
        payload = {**payload, "specialist": specialist}  # its engine may serve several
        span = self._span(specialist, payload)
        if span is not None:  # the replica's span goes under this call's
            payload = {**payload, "trace": carrier(span), "sent_at": time.time()}
        payload = EngineRequest(payload)  # its prompt readable by Ray's request routers
        started = time.monotonic()
        gen: Any = None
        try:  # a full queue (back-pressure) may refuse the call at once or on first read
            gen = self.handles[specialist].options(stream=True).generate.remote(payload)
            first = await asyncio.wait_for(gen.__anext__(), self._remaining())
        except StopAsyncIteration:
            first = None
        except BaseException as exc:
            if gen is not None:
                _cancel(gen)
            if span is not None:
                fail(span, exc, http_status(exc))
                span.end()
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise from_exception(exc, self.request_id) from None
        ttft = time.monotonic() - started

        async def items() -> AsyncIterator[dict[str, Any]]:
            seen = Answer()
            try:
                if first is None:
                    return
                seen.absorb(first)
                yield first
                while True:
                    try:
                        item = await asyncio.wait_for(gen.__anext__(), self._remaining())
                    except StopAsyncIteration:
                        return
                    seen.absorb(item)
                    yield item
            except BaseException as exc:
                if span is not None:
                    fail(span, exc, http_status(exc))
                raise
            finally:
                _cancel(gen)
                self._ended(span, specialist, seen, ttft)
                if span is not None:
                    span.end()

        return items()

    async def collect(self, specialist: str, payload: dict[str, Any]) -> dict[str, Any]:
        """One whole answer (the ``Caller`` of answer policies)."""
        answer = Answer()
        logprob = None
        try:
            async for item in await self.stream(specialist, payload):
                answer.absorb(item)
                logprob = item.get("cumulative_logprob", logprob)
        except Exception as exc:
            err = from_exception(exc, self.request_id)
            if err.status in _RECOVERABLE:
                raise CallFailed(f"{specialist}: {err.message}") from None
            if isinstance(exc, APIError):
                raise
            raise err from None
        return {**answer.as_dict(), "cumulative_logprob": logprob}
