"""Everything a request is charged, in order: admission (rate limit, then a budget
reservation of its maximum possible cost), pricing of what it used, and settlement
(tokens per minute, the ledger's counters and record). The gateway calls ``admit_rate``
before routing, ``reserve`` once the request is planned, and ``settle`` exactly once when
it ends, however it ends.

Billing knows requests only by what it is given here (``Exposure`` for a reservation,
``Settlement`` for the end): it never imports the request path above it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.billing.keys import KeyRecord
from orchestrator.billing.ledger import Ledger, day_of
from orchestrator.billing.limits import RateLimiter
from orchestrator.billing.pricing import CostModel
from orchestrator.billing.spool import Spool
from orchestrator.config import MixserveConfig
from orchestrator.errors import APIError
from orchestrator.telemetry.log_throttle import Throttled
from orchestrator.telemetry.metrics import ServiceMetrics

logger = logging.getLogger(__name__)
throttled = Throttled(logger)
TEMPLATE_BYTES = 512  # prompt format, labels and the synthesis instructions, at most
NO_KEY, NO_TENANT = "-", "default"  # who a request is recorded under when auth is off
DRAIN_INTERVAL_S = 1.0


@dataclass(frozen=True)
class Exposure:
    """The most a planned request may use: the specialists it may call (any of them,
    when it may spill over), how many calls, the UTF-8 bytes of its messages and
    passages, and ``max_tokens`` per call."""

    specialists: Sequence[str]
    calls: int
    prompt_bytes: int
    max_tokens: int


@dataclass(frozen=True)
class Settlement:
    """A finished request, as the ledger records it."""

    request_id: str
    settle_id: str  # the ledger's idempotency id, drawn per request by the gateway
    key: KeyRecord | None
    specialist: str
    policy: str
    cached: bool
    latency_s: float
    trace_id: str = ""
    method: str = ""  # how the answering engine made it, when it has several ways


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

    def max_cost(self, exposure: Exposure) -> float:
        """An upper bound of the request's cost: every call it may make at the dearest
        rate of the specialists it may call, prompts bounded by their UTF-8 bytes (a
        token is at least one byte), replica time by the request's deadline."""
        names, calls, out = exposure.specialists, exposure.calls, exposure.max_tokens
        system = max(len(self.config.specialist(n).system_prompt.encode()) for n in names)
        # a synthesis reads the other calls' answers
        prompt = exposure.prompt_bytes + system + TEMPLATE_BYTES + (calls - 1) * out
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

    async def reserve(self, key: KeyRecord, settle_id: str, exposure: Exposure) -> None:
        """Raise 402 (or 503 in an outage) unless the key's budget covers the request."""
        try:
            await self._reserve(key, settle_id, exposure)
        except APIError as err:
            raise self._refused(err) from None

    async def _reserve(self, key: KeyRecord, settle_id: str, exposure: Exposure) -> None:
        if key.budget_usd is None or self.ledger is None:
            return
        try:
            await self.ledger.reserve(
                key.key_id, key.budget_usd, settle_id, self.max_cost(exposure)
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

    def price(
        self, calls: Sequence[dict[str, Any]], router_busy_s: float, retrieval_busy_s: float
    ) -> dict[str, float]:
        """The ``usage.cost`` object of what a request used (pass no calls for an answer
        from the cache: it made none)."""
        return self.costs.request(calls, router_busy_s, retrieval_busy_s)

    async def settle(
        self, done: Settlement, usage: dict[str, Any] | None, outcome: str = "ok"
    ) -> None:
        """Settle a finished request (the caller makes sure it happens once): its tokens
        per minute, its spend and its record. Without ``usage`` (the request failed)
        nothing is charged but the record says so."""
        self._ensure_drainer()
        key = done.key
        tokens = int(usage["total_tokens"]) if usage else 0
        if key is not None and self.limiter is not None and not done.cached:
            await self.limiter.spend_tokens(key, done.request_id, tokens)
        if self.ledger is None:
            return
        cost = float(usage["cost"]["total_usd"]) if usage else 0.0
        record = {
            "specialist": done.specialist,
            "policy": done.policy,
            "prompt_tokens": usage["prompt_tokens"] if usage else 0,
            "completion_tokens": usage["completion_tokens"] if usage else 0,
            "cached": int(done.cached),
            "latency_s": round(done.latency_s, 4),
            "outcome": outcome,
            "trace_id": done.trace_id,
        }
        if done.method:
            record["method"] = done.method
        entry: dict[str, Any] = {
            "key_id": key.key_id if key else NO_KEY,
            "tenant": key.tenant if key else NO_TENANT,
            "request_id": done.request_id,
            "settle_id": done.settle_id,
            "cost_usd": cost,
            "record": record,
        }
        try:
            await self.ledger.settle(**entry)
        except Exception as exc:  # noqa: BLE001 - Redis is down: keep it on disk
            if self.spool is None:
                logger.error("ledger settlement of %s lost: %s", done.request_id, exc)
                return
            throttled.warning("ledger unreachable (%s): %s spooled", exc, done.request_id)
            await asyncio.to_thread(self.spool.append, entry)  # an fsync: off the loop
            self.spooled += 1
            if self.metrics is not None:
                self.metrics.spooled.set(self.spooled)
            self._ensure_drainer()

    def _ensure_drainer(self) -> None:
        """Keep one task replaying the spool while it may hold anything: after a
        settlement was spooled, and once at the first request (files a dead gateway
        left). The spool's files are only ever read by that task, in a thread."""
        if self.spool is None or self.ledger is None:
            return
        if self._drainer is not None and not self._drainer.done():
            return
        if self.spooled or not self._leftovers_checked:
            self._leftovers_checked = True
            self._drainer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        spool, ledger = self.spool, self.ledger
        if spool is None or ledger is None:
            return
        while await asyncio.to_thread(spool.waiting):
            try:
                count = await spool.drain(lambda e: ledger.settle(**e))
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
