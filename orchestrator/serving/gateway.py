"""The HTTP ingress: OpenAI-compatible chat completions, /v1/query, retrieval search,
models, usage, traces and health.

Per request: headers and key checked → body parsed and validated → planned
(``orchestrator.serving.planning``: rate limit, routing unless a specialist is pinned, and
retrieval, concurrently; budget reservation) → answered (``orchestrator.serving.answering``:
the cache, or the answer policy, one specialist, a cascade or an ensemble, streaming its
last call) → in one body or as server-sent events (``orchestrator.serving.streaming``). Usage
counts the tokens of every call the policy made. A client that disconnects cancels the
specialist stream, which aborts its generation. The whole request is one trace, its
root span made here.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterable, AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from ray import serve

from orchestrator.billing import NO_TENANT, Accounts, KeyRecord, authenticate
from orchestrator.billing.spool import Spool
from orchestrator.config import MixserveConfig
from orchestrator.errors import APIError
from orchestrator.ray_compat import on_this_transport
from orchestrator.redis_clients import async_client
from orchestrator.serving import protocol
from orchestrator.serving.addresses import handle_of
from orchestrator.serving.admission import Admission, fleet_limit
from orchestrator.serving.answering import Answering
from orchestrator.serving.cache import ResponseCache
from orchestrator.serving.completions import CompletionRequest, answer_text
from orchestrator.serving.embeddings import EmbeddingRequest, embed, embedding_model
from orchestrator.serving.engine_slots import EngineSlots, engine_capacity
from orchestrator.serving.http import (
    check_headers,
    event_stream,
    install_error_handlers,
    read_json,
    request_id_of,
    validate,
)
from orchestrator.serving.planning import Planner
from orchestrator.serving.probes import readiness, replica_stats
from orchestrator.serving.protocol import ChatCompletionRequest, QueryRequest, SearchRequest
from orchestrator.serving.responses import ResponsesRequest, answer_response
from orchestrator.serving.search import describe, search
from orchestrator.serving.tools import check_tools
from orchestrator.telemetry import RequestTrace, ServiceMetrics, TraceOptions, Tracing
from orchestrator.telemetry.trace_store import stored_trace

logger = logging.getLogger(__name__)
REDIS_PING_S = 2.0


async def _released_after(
    body: AsyncIterable[Any], release: Callable[[], None]
) -> AsyncIterator[Any]:
    """The body of a streamed response, releasing its admission slot when it ends."""
    try:
        async for piece in body:
            yield piece
    finally:
        release()


app = FastAPI(title="mixserve", version="0.1.0")
install_error_handlers(app)


@serve.ingress(app)
class Gateway:
    def __init__(
        self,
        config: MixserveConfig,
        router: Any,
        retrievers: dict[str, Any],
        specialists: dict[str, Any],
        redis_url: str | None,
        spool_dir: str | None = None,
        tracing: TraceOptions | None = None,
        *,
        versions: dict[str, str],
    ) -> None:
        self.config = config
        # each specialist's version (its chat template's text in it), computed where the
        # config's files are (the app's builder)
        self.versions = versions
        router = on_this_transport(router)
        retrievers = {name: on_this_transport(h) for name, h in retrievers.items()}  # by collection
        # engines are applications of their own, found by name (or handles, bound in)
        specialists = {name: on_this_transport(handle_of(h)) for name, h in specialists.items()}
        self.router = router
        self.retrievers = retrievers
        self.specialists = specialists
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
        self.slots = EngineSlots(engine_capacity(config), config.policy.spill.max_waiting)
        self.planner = Planner(
            self.config,
            router,
            retrievers,
            specialists,
            self.cache,
            self.accounts,
            self.metrics,
            self.slots,
            self.versions,
        )
        self.answering = Answering(
            specialists,
            self.cache,
            self.accounts,
            self.metrics,
            self.config.policy.spill,
            engines=self.planner.engines,  # specialist -> its engine deployment
            slots=self.slots,
            retry=self.config.policy.retry,
        )
        self.admission = Admission(fleet_limit(config), config.gateway.request_timeout_s + 30)

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

    def _trace(self, operation: str, request: Request) -> RequestTrace:
        return RequestTrace(self.tracing, operation, request_id_of(request), request.url.path)

    # ---- routes ---------------------------------------------------------------------
    async def _traced(self, operation: str, request: Request, handler: Any) -> Response:
        """Run a generation route under the request's root span; a streamed response
        ends its span when its body ends."""
        trace = self._trace(operation, request)
        try:
            release = self.admission.admit()  # 429 at once past capacity
        except APIError as err:
            self.metrics.rejected.inc(1, tags={"reason": "admission"})
            trace.fail(err)
            raise
        try:
            response: Response = await handler(trace, request)
        except BaseException as exc:
            release()
            trace.fail(exc)
            raise
        if isinstance(response, StreamingResponse):  # the slot is held until the body ends
            response.body_iterator = _released_after(response.body_iterator, release)
        else:
            release()
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
        messages = protocol.conversation(body)
        check_tools(body.tools, body.tool_choice, body.messages)
        self._check_n(body.n)
        sampling = self._sampling(body, body.requested_max_tokens())
        plan = await self.planner.plan(trace, body.model, messages, sampling, body.mixserve, key)
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            events = await self.answering.events(plan, include_usage, bool(body.logprobs))
            return event_stream(events, plan.headers)
        answer, usage = await self.answering.complete(plan)
        out = protocol.completion(
            f"chatcmpl-{request_id}",
            plan.specialist,
            "".join(answer.parts),
            answer.finish_reason,
            usage,
            plan.meta,
            answer.logprobs if body.logprobs else None,
            answer.tool_calls,
            [
                protocol.choice(
                    i, "".join(a.parts), a.finish_reason,
                    a.logprobs if body.logprobs else None, a.tool_calls,
                )
                for i, a in sorted(answer.others.items())
            ],
        )  # fmt: skip
        return JSONResponse(out, headers=plan.headers)

    def _sampling(self, body: ChatCompletionRequest, max_tokens: int | None) -> dict[str, Any]:
        """What a chat request asks of the engine, its length bounded by the gateway's."""
        return {
            "max_tokens": self.planner.max_tokens(max_tokens),
            "temperature": body.temperature,
            "top_p": body.top_p,
            "stop": body.stop_list(),
            "seed": body.seed,
            **body.sampling_extras(),
        }

    def _check_n(self, n: int) -> None:
        if n > self.config.gateway.max_n:
            raise APIError(
                400,
                f"n is {n}; this service answers at most {self.config.gateway.max_n} "
                "choices a request (gateway.max_n)",
                param="n",
                code="invalid_value",
            )

    @app.post("/v1/completions")
    async def completions(self, request: Request) -> Response:
        return await self._traced("text_completion", request, self._text)

    async def _text(self, trace: RequestTrace, request: Request) -> Response:
        key = await self._authorize(request, trace)
        body: CompletionRequest = validate(
            CompletionRequest, await read_json(request, self.config.gateway.max_body_bytes)
        )
        self._check_n(body.n)
        sampling = {"max_tokens": self.planner.max_tokens(body.max_tokens), **body.sampling()}
        plan = await self.planner.plan(
            trace, body.model, [("user", body.text())], sampling, body.mixserve, key,
            use_retrieval=False,
        )  # fmt: skip
        return await answer_text(self.answering, plan, body)

    @app.post("/v1/responses")
    async def responses(self, request: Request) -> Response:
        return await self._traced("chat", request, self._respond)

    async def _respond(self, trace: RequestTrace, request: Request) -> Response:
        key = await self._authorize(request, trace)
        data = await read_json(request, self.config.gateway.max_body_bytes)
        body: ResponsesRequest = validate(ResponsesRequest, ResponsesRequest.checked(data))
        # the chat request it asks for, checked as chat's (tools, their calls, the format)
        chat: ChatCompletionRequest = validate(ChatCompletionRequest, body.chat_body())
        messages = protocol.conversation(chat)
        check_tools(chat.tools, chat.tool_choice, chat.messages)
        sampling = self._sampling(chat, body.max_output_tokens)
        plan = await self.planner.plan(trace, body.model, messages, sampling, body.mixserve, key)
        return await answer_response(self.answering, plan, body)

    async def _query(self, trace: RequestTrace, request: Request) -> Response:
        request_id = trace.request_id
        key = await self._authorize(request, trace)
        body: QueryRequest = validate(
            QueryRequest, await read_json(request, self.config.gateway.max_body_bytes)
        )
        sampling = {
            "max_tokens": self.planner.max_tokens(body.max_tokens),
            "temperature": body.temperature,
            "top_p": 1.0,
            "stop": [],
            "seed": None,
        }
        plan = await self.planner.plan(
            trace,
            body.model,
            [("user", body.query)],
            sampling,
            body.mixserve,
            key,
            use_retrieval=body.retrieval,
        )
        answer, usage = await self.answering.complete(plan)
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

    @app.post("/v1/retrieval/search")
    async def retrieval_search(self, request: Request) -> Response:
        return await self._traced("retrieval", request, self._search)

    async def _search(self, trace: RequestTrace, request: Request) -> Response:
        await self._authorize(request, trace)
        body: SearchRequest = validate(
            SearchRequest, await read_json(request, self.config.gateway.max_body_bytes)
        )
        return JSONResponse(await search(self.config, self.retrievers, trace, body))

    @app.post("/v1/embeddings")
    async def embeddings(self, request: Request) -> Response:
        return await self._traced("embeddings", request, self._embeddings)

    async def _embeddings(self, trace: RequestTrace, request: Request) -> Response:
        await self._authorize(request, trace)
        body: EmbeddingRequest = validate(
            EmbeddingRequest, await read_json(request, self.config.gateway.max_body_bytes)
        )
        return JSONResponse(await embed(self.config, self.retrievers, trace, body))

    @app.get("/v1/retrieval/collections")
    async def retrieval_collections(self, request: Request) -> dict[str, Any]:
        await self._authorize(request)
        return await describe(self.config, self.retrievers)

    @app.get("/v1/models")
    async def models(self, request: Request) -> dict[str, Any]:
        await self._authorize(request)
        entries = [("auto", "routed to the best specialist per query")]
        entries += [(s.name, s.description) for s in self.config.specialists]
        encoder = embedding_model(self.config)
        if encoder is not None:
            entries.append((encoder, "embeddings (/v1/embeddings): the retrieval encoder"))
        return protocol.model_list(entries)

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
        failed, in flight, requests unfinished inside the engine) and its engine's load."""
        await self._authorize(request)
        engines = {s.deployment: self.specialists[s.name] for s in self.config.specialists}
        stats = await replica_stats(engines)
        data = []
        for s in self.config.specialists:
            engine = stats[s.deployment]
            own = None
            if engine is not None:  # this specialist's counters, and its engine's backlog
                own = {
                    **engine["by_specialist"][s.name],
                    "engine_unfinished": engine["engine_unfinished"],
                    "engine_load": engine["engine_load"],
                    # what the replica asked runs (mid-rollout it may still be the old)
                    "version": engine.get("versions", {}).get(s.name),
                    "node": engine.get("node"),
                }
            data.append(
                {
                    "name": s.name,
                    "description": s.description,
                    "replicas": s.replicas,
                    "deployment": s.deployment,
                    "lora": s.lora is not None,
                    "version": self.versions[s.name],  # the one this gateway's config names
                    "stats": own,
                }
            )
        return {"object": "list", "data": data}

    @app.get("/healthz")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    async def _redis_state(self) -> str:
        """ "ready" when Redis answers a ping; "spooling" when it does not but settlements
        can wait on local disk; "not ready" when neither (nothing would record spend)."""
        if self.redis is None:
            return "ready" if not self.config.ledger.enabled else "spooling"
        try:
            await asyncio.wait_for(self.redis.ping(), REDIS_PING_S)
            return "ready"
        except Exception as exc:  # noqa: BLE001 - any failure to answer is unreachable
            if self.accounts.spool is not None and os.access(self.accounts.spool.folder, os.W_OK):
                return f"spooling (Redis unreachable: {type(exc).__name__})"
            return f"not ready: Redis unreachable ({type(exc).__name__}) and no spool"

    async def check_health(self) -> None:
        """Serve calls this every few seconds; raising replaces the replica. Healthy: Redis
        answers, or settlements can be spooled on local disk until it does."""
        state = await self._redis_state()
        if state.startswith("not ready"):
            raise RuntimeError(state)

    @app.get("/readyz")
    async def readyz(self) -> Response:
        status = await readiness(
            {
                "router": self.router,
                **{f"retriever:{name}": h for name, h in self.retrievers.items()},
                **{
                    f"specialist:{s.name}": self.specialists[s.name]
                    for s in self.config.specialists
                },
            }
        )
        status["redis"] = await self._redis_state()
        ok = all(v == "ready" or v.startswith("spooling") for v in status.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "components": status},
            status_code=200 if ok else 503,
        )
