"""Calls from the gateway to specialist deployments, under one request's deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import Span, SpanKind

from orchestrator.config import RetryConfig
from orchestrator.errors import APIError, ReplicaLost, from_exception, http_status, lost_replica
from orchestrator.policies import CallFailed
from orchestrator.serving.plan import Answer
from orchestrator.serving.wire import EngineCall
from orchestrator.telemetry import attributes as semconv
from orchestrator.telemetry.tracing import carrier, fail

if TYPE_CHECKING:
    from orchestrator.telemetry.request_trace import RequestTrace

# what a call cost: (specialist, prompt tokens, completion tokens, busy seconds) -> USD
Pricer = Callable[[str, int, int, float], float]


@dataclass
class Carried:
    """What a resumed call's items build on: the lost call's prompt tokens (the new
    call's prompt also holds the text it continues from), completion tokens and summed
    log-probability."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    logprob: float | None = None

    def onto(self, item: dict[str, Any]) -> dict[str, Any]:
        if not self.completion_tokens:
            return item
        logprob = item.get("cumulative_logprob")
        if logprob is not None and self.logprob is not None:
            logprob += self.logprob
        return {
            **item,
            "prompt_tokens": self.prompt_tokens or item["prompt_tokens"],
            "completion_tokens": int(item["completion_tokens"]) + self.completion_tokens,
            "cumulative_logprob": logprob,
        }


class Tries:
    """One call's retries after lost replicas, within ``retry.max_retries``, each after a
    pause that doubles (while Serve learns which replica is gone)."""

    def __init__(self, calls: SpecialistCalls, specialist: str, span: Span | None) -> None:
        self.calls = calls
        self.specialist = specialist
        self.span = span
        self.count = 0

    async def lost(self, exc: BaseException, tokens: int, stage: str) -> None:
        retry = self.calls.retry
        if self.count >= retry.max_retries:
            self.calls._note(self.specialist, "gave_up", tokens, exc)
            raise ReplicaLost(self.specialist, tokens, self.count + 1) from exc
        self.count += 1
        self.calls._note(self.specialist, stage, tokens, exc)
        if self.span is not None:
            self.span.add_event(
                "mixserve.replica_lost",
                {
                    "mixserve.retry.stage": stage,
                    "mixserve.retry.after_tokens": tokens,
                    "exception.type": type(exc).__name__,
                },
            )
        pause = retry.backoff_s * 2 ** (self.count - 1)
        await asyncio.sleep(min(pause, self.calls._remaining()))


# Failures another specialist may not share: a cascade escalates past them, an
# ensemble drops the candidate. Anything else (bad input, the deadline) fails the request.
_RECOVERABLE = (500, 503)


def resumable(payload: dict[str, Any]) -> bool:
    """Whether an answer cut short can go on from its text on another replica: not
    with ``n`` choices (no one text to go on), nor when a grammar constrains it (a
    ``response_format``, or tools and their parser): the continued text is prompt to the
    engine, and the grammar or parser would start again after it, mid-object."""
    several = int(payload.get("n") or 1) > 1
    return not several and not payload.get("response_format") and not payload.get("tools")


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
        retry: RetryConfig | None = None,
        on_retry: Callable[[str, str], None] | None = None,
    ) -> None:
        self.retry = retry or RetryConfig()
        self.on_retry = on_retry  # (specialist, stage) of each retry, for the metrics
        self.retries: list[dict[str, Any]] = []  # what was retried, for the response
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

    async def _open(
        self, specialist: str, payload: dict[str, Any], tries: Tries
    ) -> tuple[Any, dict[str, Any] | None]:
        """Start the specialist's stream and wait for its first item; a call whose replica
        is lost before then is sent again (Serve routes it to a live replica, or holds it
        until the replacement is up), within ``retry.max_retries`` and the deadline."""
        call = EngineCall.of(payload)  # the typed wire: a field it does not know fails here
        while True:
            gen: Any = None
            try:  # a full queue (back-pressure) may refuse the call at once or on first read
                handle = self.handles[specialist].options(stream=True)
                gen = handle.generate.remote(call)
                return gen, await asyncio.wait_for(gen.__anext__(), self._remaining())
            except StopAsyncIteration:
                return gen, None
            except Exception as exc:
                if gen is not None:
                    _cancel(gen)
                if not lost_replica(exc):
                    raise
                await tries.lost(exc, 0, "before_first_token")
            except BaseException:
                if gen is not None:
                    _cancel(gen)
                raise

    async def stream(
        self, specialist: str, payload: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        """Start the specialist stream and wait for its first chunk, so that errors (bad
        input the engine found, overload) surface here, before any response is sent.
        Closing the returned iterator (a client that went away) cancels the generation.
        The call's span (under the request's root) lasts until the stream ends.

        A replica lost mid-answer (killed, its node gone, its engine dead) is not the
        client's problem: the call goes on on another replica from the text it had
        (``continuation``), its token counts carried over, so the answer arrives whole;
        only when that is off or the retries are spent does the stream end with a
        ``replica_lost`` error."""
        payload = {**payload, "specialist": specialist}  # its engine may serve several
        span = self._span(specialist, payload)
        if span is not None:  # the replica's span goes under this call's
            payload = {**payload, "trace": carrier(span), "sent_at": time.time()}
        tries = Tries(self, specialist, span)
        started = time.monotonic()
        try:
            gen, first = await self._open(specialist, payload, tries)
        except BaseException as exc:
            if span is not None:
                fail(span, exc, http_status(exc))
                span.end()
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise from_exception(exc, self.request_id) from None
        ttft = time.monotonic() - started

        async def items() -> AsyncIterator[dict[str, Any]]:
            nonlocal gen
            seen, carried, item, finished = Answer(), Carried(), first, False
            logprob = None  # the answer's so far, for a resumption to build on
            try:
                while item is not None:
                    item = carried.onto(item)
                    seen.absorb(item)
                    logprob = item.get("cumulative_logprob", logprob)
                    finished = finished or item.get("finish_reason") is not None
                    yield item
                    try:
                        item = await asyncio.wait_for(gen.__anext__(), self._remaining())
                    except StopAsyncIteration:
                        return
                    except Exception as exc:
                        if not lost_replica(exc):
                            raise
                        _cancel(gen)
                        if finished:  # every token had arrived, only the close was lost
                            return
                        gen, item, carried = await self._resume(
                            specialist, payload, seen, logprob, exc, tries
                        )
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

    async def _resume(
        self,
        specialist: str,
        payload: dict[str, Any],
        seen: Answer,
        logprob: float | None,
        exc: Exception,
        tries: Tries,
    ) -> tuple[Any, dict[str, Any] | None, Carried]:
        """The rest of an answer whose replica was lost after ``seen``: a new call that
        continues from its text, asked for the tokens still allowed; its items' counts
        are carried onto what came before."""
        if not self.retry.resume or not resumable(payload):
            self._note(specialist, "gave_up", seen.completion_tokens, exc)
            raise ReplicaLost(specialist, seen.completion_tokens, tries.count + 1) from exc
        await tries.lost(exc, seen.completion_tokens, "resumed")
        left = int(payload["max_tokens"]) - seen.completion_tokens
        rest = {**payload, "continuation": "".join(seen.parts), "max_tokens": max(1, left)}
        gen, first = await self._open(specialist, rest, tries)
        return gen, first, Carried(seen.prompt_tokens, seen.completion_tokens, logprob)

    def _note(self, specialist: str, stage: str, tokens: int, exc: BaseException) -> None:
        self.retries.append(
            {
                "specialist": specialist,
                "stage": stage,
                "after_tokens": tokens,
                "error": type(exc).__name__,
            }
        )
        if self.on_retry is not None:
            self.on_retry(specialist, stage)

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
