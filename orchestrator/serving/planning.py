"""Planning a request: validate what the policy needs, admit it (rate limit), route
and retrieve concurrently (each under its own span), choose the cache key, and reserve
the budget of its maximum cost. The result is a ``Plan`` the answering side carries out."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from opentelemetry.trace import SpanKind

from orchestrator.billing import Accounts, Exposure, KeyRecord
from orchestrator.config import MixserveConfig
from orchestrator.errors import APIError, unknown_model
from orchestrator.serving.cache import ResponseCache, cache_key, digest_of
from orchestrator.serving.engine_slots import EngineSlots
from orchestrator.serving.joint import capacity_of
from orchestrator.serving.plan import Grounding, Plan, grounding, policy_for, select_passages
from orchestrator.serving.protocol import MixserveOptions
from orchestrator.serving.tools import calls_tools, tool_specialist
from orchestrator.telemetry.log_throttle import Throttled
from orchestrator.telemetry.metrics import ServiceMetrics
from orchestrator.telemetry.request_trace import RequestTrace
from orchestrator.telemetry.tracing import Carrier
from retrieval import interleave

logger = logging.getLogger(__name__)
throttled = Throttled(logger)  # a router that is down fails every request alike


async def _nothing() -> None:
    return None


def exposure(plan: Plan, config: MixserveConfig) -> Exposure:
    """The most the plan may use. A single call makes one call (a call refused for
    overload costs nothing), to its specialist, or to any when a routed one may spill
    over; another policy may call any specialist up to ``max_calls`` times."""
    single = plan.policy == "single"
    spill = config.policy.spill.enabled and not plan.meta["routing"].get("pinned")
    payload = plan.payload
    prompt = sum(len(t.encode()) for _, t in payload["messages"])
    prompt += sum(len(t.encode()) for _, t in payload.get("passages", []))
    everyone = [s.name for s in config.specialists]
    return Exposure(
        specialists=[plan.specialist] if single and not spill else everyone,
        calls=1 if single else plan.settings.max_calls,
        prompt_bytes=prompt,
        max_tokens=int(payload["max_tokens"]),
    )


class Planner:
    def __init__(
        self,
        config: MixserveConfig,
        router: Any,
        retrievers: Mapping[str, Any],
        specialists: Mapping[str, Any],
        cache: ResponseCache | None,
        accounts: Accounts,
        metrics: ServiceMetrics,
        slots: EngineSlots | None,
        versions: Mapping[str, str],
    ) -> None:
        self.config = config
        self.slots = slots
        self.gateway_id = uuid.uuid4().hex[:12]  # this replica, in the router's batches
        self.engines = {s.name: s.deployment for s in config.specialists}
        self.router = router
        self.retrievers = dict(retrievers)  # collection -> its retriever deployment
        self.specialists = specialists
        self.names = [s.name for s in config.specialists]
        # the specialists whose engines turn a model's text into tool calls
        self.tool_capable = frozenset(s.name for s in config.specialists if s.tool_parser)
        # what a cached answer depends on: every setting, and the chat template's text
        # (``versions``: each specialist's version, which holds it)
        self.versions = {
            s.name: digest_of({**s.model_dump(mode="json"), "version": versions[s.name]})
            for s in config.specialists
        }
        self.grounding = grounding(config)
        self.cache = cache
        self.accounts = accounts
        self.metrics = metrics

    def max_tokens(self, requested: int | None) -> int:
        limit = self.config.gateway.max_tokens_limit
        if requested is not None and requested > limit:
            raise APIError(
                400,
                f"max_tokens is {requested}, above this service's limit of {limit}",
                param="max_tokens",
                code="invalid_value",
            )
        return requested or self.config.gateway.default_max_tokens

    async def plan(
        self,
        trace: RequestTrace,
        model: str,
        messages: list[tuple[str, str]],
        sampling: dict[str, Any],
        options: MixserveOptions | None,
        key: KeyRecord | None,
        use_retrieval: bool = True,
    ) -> Plan:
        request_id = trace.request_id
        if model != "auto" and model not in self.specialists:
            raise unknown_model(model, ["auto", *self.names])
        query = next(
            (text for role, text in reversed(messages) if role == "user" and text.strip()), ""
        )
        if not query:
            raise APIError(
                400,
                "messages must include a user message with non-empty content",
                param="messages",
                code="invalid_value",
            )
        trace.request(model, sampling, messages)
        policy, settings = policy_for(self.config.policy, model, options)
        tools = calls_tools(sampling)
        several = int(sampling.get("n") or 1) > 1
        if (tools or several) and policy != "single":
            # calls are not judged or composed across models, nor are sets of choices
            if options is not None and options.policy not in (None, "single"):
                what = "tool calls" if tools else "several choices (n)"
                raise APIError(
                    400,
                    f"policy '{policy}' cannot answer with {what}; use 'single'",
                    param="mixserve.policy",
                    code="invalid_value",
                )
            policy = "single"
        await self.accounts.admit_rate(key, request_id)  # 429 before routing; bad input not
        tradeoff = options.quality_cost_tradeoff if options else None
        retrieval = self.config.retrieval
        wanted = self.grounding["auto" if model == "auto" else model]
        want_passages = use_retrieval and retrieval.enabled and wanted.count > 0
        balance = options.balance if options else True
        decision, found = await asyncio.gather(
            self._route(trace, query, tradeoff, balance) if model == "auto" else _nothing(),
            self._retrieve(trace, query, wanted) if want_passages else _nothing(),
        )
        hits: list[dict[str, Any]] = (found or {}).get("hits", [])
        if decision is None:
            specialist = model
            routing: dict[str, Any] = {
                "choice": model,
                "pinned": True,
                "scores": {},
                "confidence": 1.0,
                "reason": "pinned by request",
            }
            if tools:
                tool_specialist(routing, self.tool_capable, model)  # a 400 if it cannot
        else:
            specialist = decision["choice"]
            routing = {**decision, "pinned": False}
            if tools:
                specialist, why = tool_specialist(routing, self.tool_capable, None)
                if why:
                    routing = {**routing, "choice": specialist, "tools_from": decision["choice"]}
                    routing["reason"] = f"{routing.get('reason', '')}{why}"
            self.metrics.routed.inc(1, tags={"specialist": specialist})
            if "reassigned_from" in routing:
                moved = {"specialist": routing["reassigned_from"], "to": specialist}
                self.metrics.reassigned.inc(1, tags=moved)
                trace.root.set_attribute("mixserve.reassigned_from", routing["reassigned_from"])
        if found and found.get("degraded"):
            routing["retrieval"] = found["degraded"]  # answered without passages: say so
        mine = self.grounding[specialist]
        passages, sources = select_passages(
            hits, retrieval.max_context_chars, mine.collections, mine.count
        )
        trace.routed(routing, sources)
        payload = {"request_id": request_id, "messages": messages, "passages": passages, **sampling}
        meta = {
            "request_id": request_id,
            "specialist": specialist,
            "routing": routing,
            "sources": sources,
            "cached": False,
            "policy": {"name": policy, "reason": "", "calls": []},
        }
        headers = {"x-mixserve-specialist": specialist}
        if trace.trace_id:
            meta["trace_id"] = trace.trace_id
            headers["x-mixserve-trace-id"] = trace.trace_id
        entry = None
        if self.cache is not None and sampling.get("temperature", 1.0) == 0 and not several:
            if policy == "single":
                entry = cache_key(specialist, self.versions[specialist], payload)
            else:  # the policy may call any specialist: every version is part of the key
                state = {"settings": asdict(settings), "versions": self.versions, "λ": tradeoff}
                entry = cache_key(f"policy:{policy}", digest_of(state), payload)
        loop = asyncio.get_running_loop()
        plan = Plan(
            request_id,
            specialist,
            payload,
            meta,
            entry,
            headers,
            policy=policy,
            settings=settings,
            deadline=loop.time() + self.config.gateway.request_timeout_s,
            router_busy_s=float(routing.pop("busy_s", 0.0)),
            retrieval_busy_s=float((found or {}).get("busy_s", 0.0)),
            key=key,
            trace=trace,
            balance=balance,
            able=self.tool_capable if tools else None,
        )
        if key is not None and key.budget_usd is not None:
            with trace.child("mixserve.budget.reserve", attributes={"mixserve.key_id": key.key_id}):
                # 402 when the budget cannot cover the plan
                await self.accounts.reserve(key, plan.settle_id, exposure(plan, self.config))
        return plan

    def _capacity(self, balance: bool) -> dict[str, Any] | None:
        """What this replica sees free, for the router batch's joint assignment."""
        spill = self.config.policy.spill
        if not (balance and spill.enabled and spill.joint_assignment and self.slots):
            return None
        free = self.slots.free()
        return capacity_of(
            self.gateway_id, free, self.engines, spill.max_utility_loss, spill.min_score
        )

    async def _route(
        self, trace: RequestTrace, query: str, tradeoff: float | None, balance: bool = True
    ) -> dict[str, Any]:
        """The router's decision, waited for at most ``router.timeout_s``; a router that
        is slow, saturated or failing sends the request to the fallback specialist
        instead (marked ``degraded`` in the routing it reports), never fails it."""
        with trace.child("mixserve.routing", SpanKind.CLIENT) as span:
            try:
                capacity = self._capacity(balance)
                decision: dict[str, Any] = await asyncio.wait_for(
                    self.router.route.remote(query, tradeoff, trace.carrier(span), capacity),
                    self.config.router.timeout_s,
                )
            except Exception as exc:  # noqa: BLE001 - any router failure degrades alike
                fallback = self.config.router.fallback or self.names[0]
                problem = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
                self.metrics.degraded.inc(1, tags={"part": "router"})
                throttled.warning("router %s (%s): requests go to %s", problem, exc, fallback)
                span.set_attribute("mixserve.degraded", f"router {problem}")
                return {
                    "choice": fallback,
                    "scores": {},
                    "confidence": 0.0,
                    "reason": f"router unavailable ({problem}): sent to the fallback {fallback}",
                    "degraded": True,
                }
            span.set_attribute("mixserve.routing.choice", str(decision["choice"]))
            return decision

    async def _retrieve(self, trace: RequestTrace, query: str, wanted: Grounding) -> dict[str, Any]:
        """Passages from every wanted collection's retriever, asked at once, each waited
        for at most ``retrieval.timeout_s``, interleaved rank by rank (``interleave``: each
        collection keeps its own order). A collection whose retriever is slow, saturated
        or failing adds nothing and the request is answered with the others' passages (or
        none), marked so."""
        names = list(self.retrievers) if wanted.collections is None else wanted.collections
        with trace.child("mixserve.retrieval", SpanKind.CLIENT) as span:
            span.set_attribute("mixserve.retrieval.collections", list(names))
            carrier = trace.carrier(span)
            answers = await asyncio.gather(
                *(self._search(name, query, wanted.count, carrier) for name in names)
            )
            found = [a for a in answers if "hits" in a]
            problems = [a["problem"] for a in answers if "problem" in a]
            every = sum(len(a["hits"]) for a in found)
            hits = interleave([a["hits"] for a in found], every, lambda h: float(h["score"]))
            out: dict[str, Any] = {"hits": hits, "busy_s": sum(a["busy_s"] for a in found)}
            if problems:
                out["degraded"] = "; ".join(problems)
                span.set_attribute("mixserve.degraded", out["degraded"])
            span.set_attribute("mixserve.retrieval.hits", len(hits))
            return out

    async def _search(self, name: str, query: str, count: int, carrier: Carrier) -> dict[str, Any]:
        """One collection's hits and busy time, or ``{"problem": ...}``."""
        retrieval = self.config.retrieval
        try:
            found: dict[str, Any] = await asyncio.wait_for(
                self.retrievers[name].search.remote(query, count, retrieval.min_score, carrier),
                retrieval.timeout_s,
            )
            return found
        except Exception as exc:  # noqa: BLE001 - any retriever failure degrades alike
            problem = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
            self.metrics.degraded.inc(1, tags={"part": "retriever"})
            throttled.warning(
                "retriever-%s %s (%s): answering without its passages", name, problem, exc
            )
            return {"problem": f"retriever-{name} {problem}"}
