"""The HTTP ingress: OpenAI-compatible chat completions, /v1/query, models and health.

Per request: parse and validate → route (unless a specialist is pinned) and retrieve,
concurrently → cache lookup (temperature 0) → the answer policy (``orchestrator.policies``:
one specialist, a cascade or an ensemble) → stream its last call → answer, in one body or
as server-sent events. Usage counts the tokens of every call the policy made. A client
that disconnects cancels the specialist stream, which aborts its generation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from opentelemetry.trace import SpanKind
from ray import serve

from orchestrator import openai_format as fmt
from orchestrator.accounting import NO_TENANT, Accounts
from orchestrator.auth import authenticate
from orchestrator.cache import ResponseCache, cache_key, digest_of
from orchestrator.calls import SpecialistCalls
from orchestrator.config import MixserveConfig
from orchestrator.errors import APIError, from_exception, unknown_model
from orchestrator.keys import KeyRecord
from orchestrator.metrics import ServiceMetrics
from orchestrator.policies import CallFailed, PolicyRequest, run_policy
from orchestrator.probes import readiness, replica_stats
from orchestrator.redis_server import async_client
from orchestrator.request_io import (
    Answer,
    Plan,
    check_headers,
    install_error_handlers,
    outcome_of,
    policy_for,
    read_json,
    replay,
    request_id_of,
    select_passages,
    settle_calls,
    validate,
)
from orchestrator.request_trace import RequestTrace
from orchestrator.schemas import ChatCompletionRequest, MixserveOptions, QueryRequest
from orchestrator.spool import Spool
from orchestrator.streaming import sse_body
from orchestrator.trace_store import stored_trace
from orchestrator.tracing import Tracing

logger = logging.getLogger(__name__)
app = FastAPI(title="mixserve", version="0.1.0")
_ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "tool": "user",
    "assistant": "assistant",
}


install_error_handlers(app)


async def _nothing() -> None:
    return None


@serve.ingress(app)
class Gateway:
    def __init__(
        self,
        config: dict[str, Any],
        router: Any,
        retriever: Any,
        specialists: dict[str, Any],
        redis_url: str | None,
        spool_dir: str | None = None,
        tracing: dict[str, Any] | None = None,
    ) -> None:
        self.config = MixserveConfig.model_validate(config)
        self.router = router
        self.retriever = retriever
        self.specialists = specialists
        self.names = [s.name for s in self.config.specialists]
        self.versions = {
            s.name: digest_of(s.model_dump(mode="json")) for s in self.config.specialists
        }
        self.cache: ResponseCache | None = None
        self.redis: Any = None
        if redis_url:
            self.redis = async_client(redis_url)
        if self.config.cache.enabled and self.redis is not None:
            self.cache = ResponseCache(self.redis, self.config.cache.ttl_s)
        if self.config.auth.enabled and self.redis is None:
            raise ValueError("auth.enabled needs Redis (the key store)")
        spool = Spool(Path(spool_dir)) if spool_dir else None
        self.metrics = ServiceMetrics()
        self.accounts = Accounts(self.config, self.redis, spool, self.metrics)
        self.known_keys: dict[str, KeyRecord] = {}
        self.tracing = Tracing(tracing, "gateway")

    async def _authorize(
        self, request: Request, trace: RequestTrace | None = None
    ) -> KeyRecord | None:
        check_headers(request, self.config.gateway.max_header_bytes)
        key = None
        if self.config.auth.enabled:
            header = request.headers.get("authorization")
            key = await authenticate(self.redis, header, self.known_keys)
        if trace is not None:
            trace.caller(key.tenant if key else NO_TENANT, key.key_id if key else None)
        return key

    # ---- planning -------------------------------------------------------------------
    def _max_tokens(self, requested: int | None) -> int:
        limit = self.config.gateway.max_tokens_limit
        if requested is not None and requested > limit:
            raise APIError(
                400,
                f"max_tokens is {requested}, above this service's limit of {limit}",
                param="max_tokens",
                code="invalid_value",
            )
        return requested or self.config.gateway.default_max_tokens

    async def _plan(
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
        await self.accounts.admit_rate(key, request_id)  # 429 before routing; bad input not
        tradeoff = options.quality_cost_tradeoff if options else None
        retrieval = self.config.retrieval
        want_passages = use_retrieval and retrieval.enabled and bool(retrieval.collections)
        decision, found = await asyncio.gather(
            self._route(trace, query, tradeoff) if model == "auto" else _nothing(),
            self._retrieve(trace, query) if want_passages else _nothing(),
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
        else:
            specialist = decision["choice"]
            routing = {**decision, "pinned": False}
            self.metrics.routed.inc(1, tags={"specialist": specialist})
        passages, sources = select_passages(hits, retrieval.max_context_chars)
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
        if self.cache is not None and sampling.get("temperature", 1.0) == 0:
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
        )
        if key is not None and key.budget_usd is not None:
            with trace.child("mixserve.budget.reserve", attributes={"mixserve.key_id": key.key_id}):
                await self.accounts.reserve(plan)  # 402 when the budget cannot cover the plan
        return plan

    async def _route(
        self, trace: RequestTrace, query: str, tradeoff: float | None
    ) -> dict[str, Any]:
        with trace.child("mixserve.routing", SpanKind.CLIENT) as span:
            decision: dict[str, Any] = await self.router.route.remote(
                query, tradeoff, trace.carrier(span)
            )
            span.set_attribute("mixserve.routing.choice", str(decision["choice"]))
            return decision

    async def _retrieve(self, trace: RequestTrace, query: str) -> dict[str, Any]:
        retrieval = self.config.retrieval
        with trace.child("mixserve.retrieval", SpanKind.CLIENT) as span:
            found: dict[str, Any] = await self.retriever.search.remote(
                query, retrieval.top_k, retrieval.min_score, trace.carrier(span)
            )
            span.set_attribute("mixserve.retrieval.hits", len(found.get("hits", [])))
            return found

    # ---- generation -----------------------------------------------------------------
    def _adopt(self, plan: Plan, specialist: str, policy: dict[str, Any]) -> None:
        plan.specialist = specialist
        plan.meta["specialist"] = specialist
        plan.meta["policy"] = policy
        plan.headers["x-mixserve-specialist"] = specialist

    async def _source(self, plan: Plan) -> AsyncIterator[dict[str, Any]]:
        """Where the answer comes from: the cache, or the plan's policy, whose calls
        before the last happen here (so their errors are answered as errors, before any
        response is sent); the last call, if the policy ends with one, is streamed."""
        trace = plan.trace
        assert trace is not None  # every planned request is traced (maybe by a no-op)
        hit = None
        if plan.cache_key and self.cache is not None:
            with trace.child("mixserve.cache.lookup") as span:
                hit = await self.cache.get(plan.cache_key)
                span.set_attribute("mixserve.cache.hit", hit is not None)
        plan.meta["cached"] = hit is not None
        if hit is not None:
            policy = hit.get("policy") or {"name": "single", "reason": "", "calls": []}
            self._adopt(plan, hit.get("specialist", plan.specialist), policy)
            return replay(hit)
        calls = SpecialistCalls(
            self.specialists, plan.request_id, plan.deadline, trace, self.accounts.costs.call
        )
        request = PolicyRequest(plan.meta["routing"], plan.payload, plan.settings, calls.collect)
        try:
            finish = await run_policy(plan.policy, request)
        except CallFailed as exc:
            raise APIError(
                503, str(exc), type="overloaded_error", code="overloaded", retry_after_s=1
            ) from None
        calls_meta = [c.as_dict() for c in finish.calls]
        self._adopt(
            plan,
            finish.specialist,
            {**plan.meta["policy"], "reason": finish.reason, "calls": calls_meta},
        )
        if finish.answer is not None:
            return replay(finish.answer)
        assert finish.payload is not None  # a policy returns an answer or a call to stream
        return await calls.stream(finish.specialist, finish.payload)

    # ---- finishing (also called by the SSE body, ``orchestrator.streaming``) ---------
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
        self.accounts.price(plan, usage)
        if plan.trace is not None:
            text = "".join(answer.parts)
            plan.trace.answered(plan.specialist, plan.meta, usage, answer.finish_reason, text)
        return usage

    async def close(self, plan: Plan, usage: dict[str, Any] | None, outcome: str) -> None:
        """Settle the request in the ledger, once, under its own span."""
        if plan.closed:
            return
        if plan.trace is None:
            await self.accounts.close(plan, usage, outcome)
            return
        with plan.trace.child("mixserve.ledger.settle", attributes={"mixserve.outcome": outcome}):
            await self.accounts.close(plan, usage, outcome)

    async def remember(self, plan: Plan, answer: Answer) -> None:
        if plan.cache_key and self.cache is not None and not plan.meta["cached"]:
            value = {
                **answer.as_dict(),
                "specialist": plan.specialist,
                "policy": plan.meta["policy"],
            }
            await self.cache.put(plan.cache_key, value)

    async def _complete(self, plan: Plan) -> tuple[Answer, dict[str, Any]]:
        """The whole answer (from the cache, or generated and then cached) and its usage."""
        answer = Answer()
        try:
            async for item in await self._source(plan):
                if answer.absorb(item):
                    self.first_token(plan)
        except BaseException as exc:
            await self.close(plan, None, outcome_of(exc, plan.request_id))
            if isinstance(exc, (APIError, asyncio.CancelledError)):
                raise
            raise from_exception(exc, plan.request_id) from None
        usage = self.settle(plan, answer)
        plan.headers["x-mixserve-cost-usd"] = f"{usage['cost']['total_usd']:.9f}"
        await self.close(plan, usage, "ok")
        await self.remember(plan, answer)
        return answer, usage

    async def _events(self, plan: Plan, include_usage: bool) -> AsyncIterator[bytes]:
        try:
            items = await self._source(plan)
        except BaseException as exc:
            await self.close(plan, None, outcome_of(exc, plan.request_id))
            raise
        return sse_body(self, plan, items, include_usage)

    def _trace(self, operation: str, request: Request) -> RequestTrace:
        return RequestTrace(self.tracing, operation, request_id_of(request), request.url.path)

    # ---- routes ---------------------------------------------------------------------
    async def _traced(self, operation: str, request: Request, handler: Any) -> Response:
        """Run a generation route under the request's root span; a streamed response
        ends its span when its body ends."""
        trace = self._trace(operation, request)
        try:
            response: Response = await handler(trace, request)
        except BaseException as exc:
            trace.fail(exc)
            raise
        if not isinstance(response, StreamingResponse):
            trace.end(response.status_code)
        return response

    @app.post("/v1/chat/completions")
    async def chat_completions(self, request: Request) -> Response:
        return await self._traced("chat", request, self._chat)

    @app.post("/v1/query")
    async def query(self, request: Request) -> Response:
        return await self._traced("chat", request, self._query)

    async def _chat(self, trace: RequestTrace, request: Request) -> Response:
        request_id = trace.request_id
        key = await self._authorize(request, trace)
        body: ChatCompletionRequest = validate(
            ChatCompletionRequest, await read_json(request, self.config.gateway.max_body_bytes)
        )
        try:
            messages = [(_ROLES[m.role], m.text()) for m in body.messages]
        except ValueError as exc:
            raise APIError(400, str(exc), param="messages", code="invalid_value") from None
        sampling = {
            "max_tokens": self._max_tokens(body.requested_max_tokens()),
            "temperature": body.temperature,
            "top_p": body.top_p,
            "stop": body.stop_list(),
            "seed": body.seed,
        }
        plan = await self._plan(trace, body.model, messages, sampling, body.mixserve, key)
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            events = await self._events(plan, include_usage)
            return StreamingResponse(
                events,
                media_type="text/event-stream",
                headers={**plan.headers, "cache-control": "no-cache"},
            )
        answer, usage = await self._complete(plan)
        out = fmt.completion(
            f"chatcmpl-{request_id}",
            plan.specialist,
            "".join(answer.parts),
            answer.finish_reason,
            usage,
            plan.meta,
        )
        return JSONResponse(out, headers=plan.headers)

    async def _query(self, trace: RequestTrace, request: Request) -> Response:
        request_id = trace.request_id
        key = await self._authorize(request, trace)
        body: QueryRequest = validate(
            QueryRequest, await read_json(request, self.config.gateway.max_body_bytes)
        )
        sampling = {
            "max_tokens": self._max_tokens(body.max_tokens),
            "temperature": body.temperature,
            "top_p": 1.0,
            "stop": [],
            "seed": None,
        }
        plan = await self._plan(
            trace,
            body.model,
            [("user", body.query)],
            sampling,
            body.mixserve,
            key,
            use_retrieval=body.retrieval,
        )
        answer, usage = await self._complete(plan)
        out = {
            "request_id": request_id,
            "answer": "".join(answer.parts),
            "finish_reason": answer.finish_reason,
            "specialist": plan.specialist,
            "routing": plan.meta["routing"],
            "policy": plan.meta["policy"],
            "sources": plan.meta["sources"],
            "usage": usage,
            "cached": plan.meta["cached"],
        }
        return JSONResponse(out, headers=plan.headers)

    @app.get("/v1/models")
    async def models(self, request: Request) -> dict[str, Any]:
        await self._authorize(request)
        entries = [("auto", "routed to the best specialist per query")]
        entries += [(s.name, s.description) for s in self.config.specialists]
        return fmt.model_list(entries)

    @app.get("/v1/usage")
    async def usage(self, request: Request) -> dict[str, Any]:
        """The caller's own spend (its tenant's, and its key's against the budget)."""
        key = await self._authorize(request)
        return await self.accounts.usage_of(key, request.query_params.get("tenant"))

    @app.get("/v1/traces/{request_id}")
    async def traces(self, request_id: str, request: Request) -> dict[str, Any]:
        """The trace of one of the caller's own requests (another tenant's is a 404)."""
        key = await self._authorize(request)
        return await stored_trace(self.redis, key.tenant if key else NO_TENANT, request_id)

    @app.get("/v1/specialists")
    async def specialists_info(self, request: Request) -> dict[str, Any]:
        """Each specialist with the counters of one of its replicas (served, aborted,
        failed, in flight, and requests unfinished inside the engine)."""
        await self._authorize(request)
        stats = await replica_stats(self.specialists)
        data = [
            {
                "name": s.name,
                "description": s.description,
                "replicas": s.replicas,
                "stats": stats[s.name],
            }
            for s in self.config.specialists
        ]
        return {"object": "list", "data": data}

    @app.get("/healthz")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(self) -> Response:
        status = await readiness(
            {
                "router": self.router,
                "retriever": self.retriever,
                **{f"specialist:{n}": h for n, h in self.specialists.items()},
            }
        )
        ok = all(v == "ready" for v in status.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "components": status},
            status_code=200 if ok else 503,
        )
