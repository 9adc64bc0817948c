"""Carrying out a plan: the answer from the cache or from the plan's policy (its calls
under the request's deadline, each under its own span), then the request's usage, cost,
ledger settlement (exactly once, however the request ends) and cache entry."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from orchestrator.billing import Accounts
from orchestrator.config import RetryConfig, SpillConfig
from orchestrator.errors import APIError, from_exception
from orchestrator.policies import CallFailed, PolicyRequest, run_policy
from orchestrator.serving.cache import ResponseCache
from orchestrator.serving.calls import SpecialistCalls
from orchestrator.serving.engine_slots import EngineSlots, QueueFull
from orchestrator.serving.plan import Answer, Plan, outcome_of, replay, settle_calls
from orchestrator.serving.streaming import Shape, sse_body
from orchestrator.telemetry.metrics import ServiceMetrics


def spill_target(
    routing: Mapping[str, Any],
    tried: list[str],
    engines: Mapping[str, str],
    available: Mapping[str, Any],
    min_score: float,
    max_utility_loss: float | None = None,
) -> str | None:
    """The best-ranked specialist (by utility, else score) not on an engine already tried
    (another of the same engine's would meet the same full queue), available, predicted at
    least ``min_score`` and, with ``max_utility_loss``, ranked within that of the first
    one tried; None when there is none."""
    ranking = routing.get("utilities") or routing.get("scores") or {}
    scores = routing.get("scores") or {}
    full = {engines.get(name, name) for name in tried}
    floor = -float("inf")
    if max_utility_loss is not None and tried and tried[0] in ranking:
        floor = float(ranking[tried[0]]) - max_utility_loss
    candidates = [
        name
        for name in sorted(ranking, key=lambda n: (-float(ranking[n]), n))
        if engines.get(name, name) not in full
        and name in available
        and float(scores.get(name, 1.0)) >= min_score
        and float(ranking[name]) >= floor
    ]
    return candidates[0] if candidates else None


class Waiting:
    """One request's time spent waiting for slots, against its allowance."""

    def __init__(self, allowance_s: float) -> None:
        self.allowance_s = allowance_s
        self.seconds = 0.0

    def left(self) -> float:
        return self.allowance_s - self.seconds

    @contextmanager
    def timing(self) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds += time.monotonic() - started


class Answering:
    def __init__(
        self,
        specialists: Mapping[str, Any],
        cache: ResponseCache | None,
        accounts: Accounts,
        metrics: ServiceMetrics,
        spill: SpillConfig | None = None,
        engines: Mapping[str, str] | None = None,
        slots: EngineSlots | None = None,
        retry: RetryConfig | None = None,
    ) -> None:
        self.spill = spill or SpillConfig()
        self.retry = retry or RetryConfig()
        self.slots = slots  # this replica's share of every engine's slots, and its waiters
        # specialist -> the engine deployment serving it: spilling to a specialist on the
        # saturated engine would only meet the same full queue
        self.engines = dict(engines or {})
        self.specialists = specialists
        self.cache = cache
        self.accounts = accounts
        self.metrics = metrics

    def adopt(self, plan: Plan, specialist: str, policy: dict[str, Any]) -> None:
        plan.specialist = specialist
        plan.meta["specialist"] = specialist
        plan.meta["policy"] = policy
        plan.headers["x-mixserve-specialist"] = specialist

    async def source(self, plan: Plan) -> AsyncIterator[dict[str, Any]]:
        """Where the answer comes from: the cache, or the plan's policy, whose calls
        before the last happen here (so their errors are answered as errors, before any
        response is sent); the last call, if the policy ends with one, is streamed."""
        trace = plan.trace
        if trace is None:
            raise RuntimeError(f"request {plan.request_id} was planned without a trace")
        hit = None
        if plan.cache_key and self.cache is not None:
            with trace.child("mixserve.cache.lookup") as span:
                hit = await self.cache.get(plan.cache_key)
                span.set_attribute("mixserve.cache.hit", hit is not None)
        plan.meta["cached"] = hit is not None
        if hit is not None:
            policy = hit.get("policy") or {"name": "single", "reason": "", "calls": []}
            self.adopt(plan, hit.get("specialist", plan.specialist), policy)
            return replay(hit)
        self._hold(plan, plan.specialist)
        calls = SpecialistCalls(
            self.specialists,
            plan.request_id,
            plan.deadline,
            trace,
            self.accounts.costs.call,
            self.retry,
            self._retried,
        )
        plan.retries = calls.retries
        request = PolicyRequest(plan.meta["routing"], plan.payload, plan.settings, calls.collect)
        try:
            finish = await run_policy(plan.policy, request)
        except CallFailed as exc:
            raise APIError(
                503, str(exc), type="overloaded_error", code="overloaded", retry_after_s=1
            ) from None
        calls_meta = [c.as_dict() for c in finish.calls]
        self.adopt(
            plan,
            finish.specialist,
            {**plan.meta["policy"], "reason": finish.reason, "calls": calls_meta},
        )
        if finish.answer is not None:
            return replay(finish.answer)
        if finish.payload is None:
            raise RuntimeError(f"policy {plan.policy!r} returned neither an answer nor a call")
        return await self._stream(plan, calls, finish.specialist, finish.payload)

    async def _stream(
        self, plan: Plan, calls: SpecialistCalls, specialist: str, payload: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        """Stream the call; when its specialist is saturated (its queue is full, 503) and
        the router chose it, spill over to the next best, up to ``spill.max_spills``;
        with nowhere to spill, wait for a slot (``spill.max_wait_s``) and try again."""
        tried = [specialist]
        waiting = Waiting(self.spill.max_wait_s)
        while True:
            try:
                items = await calls.stream(specialist, payload)
            except APIError as err:
                target = self._spill_target(plan, tried, err)
                if target is None:
                    if await self._wait(plan, specialist, err, waiting):
                        continue
                    raise
            else:
                if waiting.seconds:
                    self._waited(plan, specialist, waiting, "served")
                return items
            self.metrics.spilled.inc(1, tags={"specialist": specialist, "to": target})
            policy = plan.meta["policy"]
            for call in policy["calls"]:
                if call["outcome"] == "streamed":
                    call["outcome"] = "overloaded"
            policy["calls"].append(
                {
                    "specialist": target,
                    "role": "spill",
                    "prompt_tokens": 0,
                    "completion_tokens": 0,
                    "mean_logprob": None,
                    "outcome": "streamed",
                    "busy_s": 0.0,
                    "cached_tokens": 0,
                    "method": "",
                }
            )
            policy["reason"] += f"; {specialist} was saturated, spilled to {target}"
            self.adopt(plan, target, policy)
            self._hold(plan, target)
            plan.cache_key = None  # an answer from a stand-in is not cached as the answer
            if plan.trace is not None:
                plan.trace.root.set_attribute("mixserve.spilled_from", tried)
            tried.append(target)
            specialist = target

    def _retried(self, specialist: str, stage: str) -> None:
        self.metrics.retried.inc(1, tags={"specialist": specialist, "stage": stage})

    def _hold(self, plan: Plan, specialist: str) -> None:
        """The plan holds a slot of the engine answering it (moved when it spills)."""
        if self.slots is None:
            return
        if plan.release_slot is not None:
            plan.release_slot()
        plan.release_slot = self.slots.hold(self.engines.get(specialist, specialist))

    async def _wait(self, plan: Plan, specialist: str, err: APIError, waiting: Waiting) -> bool:
        """Wait for a slot of the saturated ``specialist``: True to try it again, False
        when the request may not wait (or no longer): its 503 stands."""
        if self.slots is None or err.code != "overloaded" or not plan.balance:
            return False
        left = min(waiting.left(), plan.deadline - asyncio.get_running_loop().time())
        if left <= 0:
            if waiting.seconds:
                self._waited(plan, specialist, waiting, "expired")
            return False
        engine = self.engines.get(specialist, specialist)
        try:
            with waiting.timing():
                await self.slots.wait(engine, left)
        except QueueFull:
            self._waited(plan, specialist, waiting, "full")
            return False
        return True

    def _waited(self, plan: Plan, specialist: str, waiting: Waiting, outcome: str) -> None:
        seconds = round(waiting.seconds, 3)
        self.metrics.queue_wait.observe(
            seconds, tags={"specialist": specialist, "outcome": outcome}
        )
        plan.meta["policy"]["waited_s"] = seconds
        if outcome == "served":
            plan.meta["policy"]["reason"] += f"; waited {seconds:g} s for a slot of {specialist}"
        if plan.trace is not None:
            plan.trace.root.set_attribute("mixserve.queue_wait_s", seconds)

    def _spill_target(self, plan: Plan, tried: list[str], err: APIError) -> str | None:
        spill = self.spill
        routing = plan.meta["routing"]
        if not spill.enabled or routing.get("pinned") or err.code != "overloaded":
            return None
        if not plan.balance:
            return None
        if len(tried) > spill.max_spills:
            return None
        able = self.specialists if plan.able is None else {
            name: h for name, h in self.specialists.items() if name in plan.able
        }  # fmt: skip
        return spill_target(
            routing, tried, self.engines, able, spill.min_score, spill.max_utility_loss
        )

    # ---- finishing (also called by the SSE body, ``orchestrator.serving.streaming``) ---------
    def first_token(self, plan: Plan) -> None:
        if not plan.first_token:
            plan.first_token = True
            seconds = time.monotonic() - plan.started
            self.metrics.ttft.observe(seconds, tags={"specialist": plan.specialist})
            if plan.trace is not None:
                plan.trace.first_token(seconds)

    def settle(self, plan: Plan, answer: Answer) -> dict[str, Any]:
        """Fill the streamed call in; usage is the sum over every call made, and its cost
        what this request cost (an answer from the cache costs no specialist call)."""
        calls = plan.meta["policy"]["calls"]
        cached = plan.meta["cached"]
        usage = settle_calls(calls, answer, cached)
        if answer.method:  # which way the answering engine made it (the symbolic engine)
            plan.meta["policy"]["method"] = answer.method
        made = [] if cached else calls  # an answer from the cache made no call
        usage["cost"] = self.accounts.price(made, plan.router_busy_s, plan.retrieval_busy_s)
        if plan.retries:  # calls that lost their replica and went on elsewhere
            plan.meta["policy"]["retries"] = plan.retries
            if plan.trace is not None:
                plan.trace.root.set_attribute("mixserve.retries", len(plan.retries))
        if plan.trace is not None:
            text = "".join(answer.parts)
            plan.trace.answered(plan.specialist, plan.meta, usage, answer.finish_reason, text)
        return usage

    async def close(self, plan: Plan, usage: dict[str, Any] | None, outcome: str) -> None:
        """Count the request in the metrics and settle it in the ledger, once, under its
        own span."""
        if plan.closed:
            return
        plan.closed = True
        if plan.release_slot is not None:
            plan.release_slot()
        done = plan.settlement()
        self.metrics.answered(
            done.specialist, done.policy, usage, outcome, done.latency_s, done.method
        )
        if plan.trace is None:
            await self.accounts.settle(done, usage, outcome)
            return
        with plan.trace.child("mixserve.ledger.settle", attributes={"mixserve.outcome": outcome}):
            await self.accounts.settle(done, usage, outcome)

    async def remember(self, plan: Plan, answer: Answer) -> None:
        if plan.cache_key and self.cache is not None and not plan.meta["cached"]:
            value = {
                **answer.as_dict(),
                "specialist": plan.specialist,
                "policy": plan.meta["policy"],
            }
            await self.cache.put(plan.cache_key, value)

    async def complete(self, plan: Plan) -> tuple[Answer, dict[str, Any]]:
        """The whole answer (from the cache, or generated and then cached) and its usage."""
        answer = Answer()
        try:
            async for item in await self.source(plan):
                if answer.absorb(item):
                    self.first_token(plan)
        except BaseException as exc:
            await self.close(plan, None, outcome_of(exc))
            if isinstance(exc, (APIError, asyncio.CancelledError)):
                raise
            raise from_exception(exc, plan.request_id) from None
        usage = self.settle(plan, answer)
        plan.headers["x-mixserve-cost-usd"] = f"{usage['cost']['total_usd']:.9f}"
        await self.close(plan, usage, "ok")
        await self.remember(plan, answer)
        return answer, usage

    async def events(
        self,
        plan: Plan,
        include_usage: bool,
        per_token: bool = False,
        shape: Shape | None = None,
    ) -> AsyncIterator[bytes]:
        try:
            items = await self.source(plan)
        except BaseException as exc:
            await self.close(plan, None, outcome_of(exc))
            raise
        return sse_body(self, plan, items, include_usage, per_token, shape)
