"""Everything a request is charged, in order: admission (rate limit, then a budget
reservation of its maximum possible cost), pricing of what it used, and settlement
(tokens per minute, the ledger's counters and record). The gateway calls ``admit_rate``
before routing, ``reserve`` once the request is planned, and ``close`` exactly once when
it ends, however it ends."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from orchestrator.config import MixserveConfig
from orchestrator.costs import CostModel
from orchestrator.errors import APIError
from orchestrator.keys import KeyRecord
from orchestrator.ledger import Ledger, day_of
from orchestrator.limits import RateLimiter
from orchestrator.log_throttle import Throttled
from orchestrator.metrics import ServiceMetrics
from orchestrator.request_io import Plan
from orchestrator.spool import Spool

logger = logging.getLogger(__name__)
throttled = Throttled(logger)
TEMPLATE_BYTES = 512  # prompt format, labels and the synthesis instructions, at most
NO_KEY, NO_TENANT = "-", "default"
DRAIN_INTERVAL_S = 1.0  # who a request is recorded under when auth is off


class Accounts:
    def __init__(
        self,
        config: MixserveConfig,
        redis: Any,
        spool: Spool | None = None,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self.config = config
        self.spool = spool
        self.metrics = metrics
        self.spooled = 0  # settlements appended to the spool and not yet replayed
        self._leftovers_checked = False
        self._drainer: asyncio.Task[None] | None = None
        self.costs = CostModel(config)
        self.limiter = RateLimiter(redis) if redis is not None else None
        self.ledger = (
            Ledger(redis, retention_s=config.ledger.retention_days * 86400)
            if redis is not None and config.ledger.enabled
            else None
        )

    def max_cost(self, plan: Plan) -> float:
        """An upper bound of the request's cost: every call it may make at the dearest
        rate of the specialists it may call, prompts bounded by their UTF-8 bytes (a
        token is at least one byte), replica time by the request's deadline."""
        settings, payload = plan.settings, plan.payload
        spill = self.config.policy.spill.enabled and not plan.meta["routing"].get("pinned")
        single = plan.policy == "single"
        # a routed single call may spill over to any specialist: price it at the dearest
        names = [plan.specialist] if single and not spill else list(self.costs.specialists)
        calls = 1 if single else settings.max_calls  # a call refused for overload costs 0
        text = sum(len(t.encode()) for _, t in payload["messages"])
        text += sum(len(t.encode()) for _, t in payload.get("passages", []))
        system = max(len(self.config.specialist(n).system_prompt.encode()) for n in names)
        out = int(payload["max_tokens"])
        prompt = text + system + TEMPLATE_BYTES + (calls - 1) * out  # synthesis reads answers
        deadline = self.config.gateway.request_timeout_s
        per_call = max(self.costs.specialists[n].of(prompt, out, deadline) for n in names)
        around = self.costs.router.of(0, 0, deadline) + self.costs.retrieval.of(0, 0, deadline)
        return calls * per_call + around

    def _refused(self, err: APIError) -> APIError:
        if self.metrics is not None:
            self.metrics.rejected.inc(1, tags={"reason": err.code or str(err.status)})
        return err

    async def admit_rate(self, key: KeyRecord | None, request_id: str) -> None:
        """Raise 429 past the key's rate limits: before any routing work is spent."""
        if key is None or self.limiter is None:
            return
        try:
            await self.limiter.admit(key, request_id)
        except APIError as err:
            raise self._refused(err) from None

    async def reserve(self, plan: Plan) -> None:
        """Raise 402 (or 503 in an outage) unless the key's budget covers the plan."""
        try:
            await self._reserve(plan)
        except APIError as err:
            raise self._refused(err) from None

    async def _reserve(self, plan: Plan) -> None:
        key = plan.key
        if key is None:
            return
        if key.budget_usd is not None and self.ledger is not None:
            try:
                await self.ledger.reserve(
                    key.key_id, key.budget_usd, plan.settle_id, self.max_cost(plan)
                )
            except APIError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis is down: the outage policy
                if self.config.ledger.outage_budget_policy == "open":
                    throttled.warning("budget of %s unchecked (Redis: %s)", key.key_id, exc)
                    return
                raise APIError(
                    503,
                    "budgets cannot be checked right now; retry shortly",
                    type="overloaded_error",
                    code="ledger_unavailable",
                    retry_after_s=5,
                ) from None

    def price(self, plan: Plan, usage: dict[str, Any]) -> None:
        """Add ``usage.cost``: what this request used (a cached answer made no call)."""
        calls = [] if plan.meta["cached"] else plan.meta["policy"]["calls"]
        usage["cost"] = self.costs.request(calls, plan.router_busy_s, plan.retrieval_busy_s)

    async def close(self, plan: Plan, usage: dict[str, Any] | None, outcome: str = "ok") -> None:
        """Settle the request once: its tokens per minute, its spend and its record.
        Without ``usage`` (the request failed) nothing is charged but the record says so."""
        if plan.closed:
            return
        plan.closed = True
        self._ensure_drainer()
        if self.metrics is not None:
            self.metrics.answered(plan, usage, outcome, time.monotonic() - plan.started)
        key = plan.key
        tokens = int(usage["total_tokens"]) if usage else 0
        if key is not None and self.limiter is not None and not plan.meta["cached"]:
            await self.limiter.spend_tokens(key, plan.request_id, tokens)
        if self.ledger is None:
            return
        cost = float(usage["cost"]["total_usd"]) if usage else 0.0
        record = {
            "specialist": plan.specialist,
            "policy": plan.policy,
            "prompt_tokens": usage["prompt_tokens"] if usage else 0,
            "completion_tokens": usage["completion_tokens"] if usage else 0,
            "cached": int(bool(plan.meta["cached"])),
            "latency_s": round(time.monotonic() - plan.started, 4),
            "outcome": outcome,
            "trace_id": plan.trace.trace_id if plan.trace is not None else "",
        }
        entry: dict[str, Any] = {
            "key_id": key.key_id if key else NO_KEY,
            "tenant": key.tenant if key else NO_TENANT,
            "request_id": plan.request_id,
            "settle_id": plan.settle_id,
            "cost_usd": cost,
            "record": record,
        }
        try:
            await self.ledger.settle(**entry)
        except Exception as exc:  # noqa: BLE001 - Redis is down: keep it on disk
            if self.spool is None:
                logger.error("ledger settlement of %s lost: %s", plan.request_id, exc)
                return
            throttled.warning("ledger unreachable (%s): %s spooled", exc, plan.request_id)
            self.spool.append(entry)
            self.spooled += 1
            if self.metrics is not None:
                self.metrics.spooled.set(self.spooled)
            self._ensure_drainer()

    def _ensure_drainer(self) -> None:
        """Keep one task replaying the spool while it holds anything: after a settlement
        was spooled, and once at the first request (files a dead gateway left). The
        directory is never scanned on the way of an ordinary request."""
        if self.spool is None or self.ledger is None:
            return
        if not self.spooled and self._leftovers_checked:
            return
        self._leftovers_checked = True
        if self._drainer is None or self._drainer.done():
            if self.spooled or self.spool.pending():
                self._drainer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        assert self.spool is not None and self.ledger is not None
        ledger = self.ledger
        while self.spool.pending() or self.spool.path.exists():
            try:
                count = await self.spool.drain(lambda e: ledger.settle(**e))
                if count:
                    logger.info("replayed %d spooled settlements into the ledger", count)
                self.spooled = 0
                if self.metrics is not None:
                    self.metrics.spooled.set(0)
            except Exception as exc:  # noqa: BLE001 - still down: try again shortly
                logger.debug("spool drain deferred: %s", exc)
            await asyncio.sleep(DRAIN_INTERVAL_S)

    async def usage_of(self, key: KeyRecord | None, asked_tenant: str | None) -> dict[str, Any]:
        """``GET /v1/usage``: the caller's own tenant (and key) spend; another tenant's is
        a 404, as if it did not exist."""
        tenant = key.tenant if key else NO_TENANT
        if asked_tenant not in (None, tenant):
            raise APIError(404, f"no usage for tenant {asked_tenant!r}", code="not_found")
        if self.ledger is None:
            raise APIError(404, "the cost ledger is off in this deployment", code="not_found")
        today = day_of(time.time())
        total = await self.ledger.spend("tenant", tenant)
        day = await self.ledger.spend("tenant", tenant, today)
        body: dict[str, Any] = {
            "object": "usage",
            "tenant": tenant,
            "total_usd": total.total_usd,
            "requests": total.requests,
            "today": {"date": today, "total_usd": day.total_usd, "requests": day.requests},
        }
        if key is not None:
            spent = await self.ledger.spend("key", key.key_id)
            remaining = None if key.budget_usd is None else key.budget_usd - spent.total_usd
            body["key"] = {
                "id": key.key_id,
                "total_usd": spent.total_usd,
                "reserved_usd": spent.reserved_usd,
                "budget_usd": key.budget_usd,
                "remaining_usd": remaining,
            }
        return body
