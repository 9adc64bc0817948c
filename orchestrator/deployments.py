"""The classes each Ray Serve deployment runs: router, retriever and one per specialist
(the gateway's is ``orchestrator.serving.Gateway``).

They are plain classes; ``orchestrator.app`` wraps them with ``serve.deployment`` and the
per-deployment options from config, and binds each its own typed config object (as Ray
Serve LLM binds an ``LLMConfig``). Heavy imports stay inside methods so the gateway,
which reaches these classes only through handles, never loads torch or vLLM.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanKind
from ray import serve

from orchestrator.billing.pricing import BusyMeter
from orchestrator.config import RetrievalConfig, RouterConfig, SpecialistConfig
from orchestrator.retrieval_setup import make_embedder
from orchestrator.serving import EngineCall, assign_jointly
from orchestrator.telemetry import TraceOptions, Tracing
from orchestrator.telemetry.tracing import AttributeValue, Carrier, fail, where

if TYPE_CHECKING:
    from retrieval import CollectionSpec
    from router_model import SpecialistProfile
from orchestrator.telemetry import attributes as semconv

logger = logging.getLogger(__name__)


STAT_NAMES = ("served", "aborted", "failed", "in_flight")


HEALTH_TIMEOUT_S = 20.0  # within Serve's health_check_timeout_s (30 s)


def _noop() -> None:
    """Run on a compute thread to see that it still takes work."""


def all_cpus() -> str:
    """Every CPU this process may run on, as vLLM's OMP binding list ("0,1,2")."""
    return ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))


class ComputeThread:
    """The one thread a replica runs its torch work on, loading included.

    Each thread that enters torch's OpenMP parallel regions gets a team of OpenMP threads
    of its own; ``asyncio.to_thread`` spreads calls over up to six pool threads, so six
    teams took turns spinning on two cores. Measured here, one routing decision at layer
    1: 7.9 ms on one thread, 11.2 ms once a second thread had run one, and 15-40 ms in the
    router replica (full depth: 75-90 ms alone, 190-260 ms in the replica).
    """

    def __init__(self, name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    def run_now(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` on the compute thread and wait (for construction)."""
        return self._pool.submit(fn, *args, **kwargs).result()

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)


class RouterServer:
    """Runs the router LLM; concurrent queries are batched into one forward pass."""

    def __init__(
        self,
        config: RouterConfig,
        model_dir: str,
        profiles: list[SpecialistProfile],
        tracing: TraceOptions | None = None,
    ) -> None:
        from router_model import build_router

        self.tracing = Tracing(tracing, "router")
        self.compute = ComputeThread("router")
        started = time.monotonic()
        probe = config.early_exit  # its artifact resolved against the config's folder too
        self.router = self.compute.run_now(
            build_router,
            model_dir,
            profiles,
            layer=config.layer,
            max_query_tokens=config.max_query_tokens,
            dtype=config.dtype,
            compile=config.compile,
            threads=config.threads,
            head=config.head,
            head_params=config.head_params,
            artifact=config.artifact,  # resolved against the config's folder by the app
            models=config.models,
            tradeoff=config.quality_cost_tradeoff,
            fallback=config.fallback,
            min_confidence=config.min_confidence,
            exit_artifact=probe.artifact if probe else None,
            exit_layer=probe.layer if probe else 0,
            exit_margin=probe.min_margin if probe else 0.0,
            exit_agree=probe.agree if probe else False,
        )
        self.assignment: Any = None  # kernels.BalancedAssignment, made on first need
        logger.info("router ready in %.1fs", time.monotonic() - started)

    # no wait for company: a query alone runs at once, and those that arrive while a
    # batch runs form the next one (a 2 ms wait added 2 ms to every routed request)
    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.0)
    async def _route(
        self, requests: list[tuple[str, float | None, dict[str, Any] | None]]
    ) -> list[dict[str, Any]]:
        queries = [q for q, _, _ in requests]
        tradeoffs = [t for _, t, _ in requests]
        capacities = [c for _, _, c in requests]
        started = time.monotonic()
        decisions = await self.compute.run(self._decide, queries, tradeoffs, capacities)
        # batches run one at a time: each query is charged an equal share of its batch
        share = (time.monotonic() - started) / len(requests)
        size = len(requests)
        return [{**d, "busy_s": share, "batch_size": size} for d in decisions]

    def _decide(
        self,
        queries: list[str],
        tradeoffs: list[float | None],
        capacities: list[dict[str, Any] | None],
    ) -> list[dict[str, Any]]:
        """Each query's decision, the batch then assigned jointly against free slots."""
        decisions = [d.as_dict() for d in self.router.route_batch(queries, tradeoffs)]
        if any(c is not None for c in capacities):
            if self.assignment is None:
                from kernels import BalancedAssignment

                self.assignment = BalancedAssignment(device="cpu")
            assign_jointly(decisions, capacities, self.assignment)
        return decisions

    async def route(
        self,
        query: str,
        tradeoff: float | None = None,
        trace: Carrier | None = None,
        capacity: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The routing decision; with ``capacity`` (``serving.joint.capacity_of``) the
        query takes part in its batch's joint assignment against free slots."""
        with self.tracing.span("mixserve.router.route", trace, SpanKind.SERVER, where()) as span:
            result: dict[str, Any] = await self._route((query, tradeoff, capacity))
            batch = int(result.pop("batch_size", 1))
            span.set_attributes(
                {
                    "mixserve.routing.choice": str(result["choice"]),
                    "mixserve.routing.confidence": float(result["confidence"]),
                    "mixserve.router.batch_size": batch,
                    "mixserve.router.layer": int(result.get("layer", 0)),
                    "mixserve.busy_s": float(result["busy_s"]),
                }
            )
            if "reassigned_from" in result:
                span.set_attribute("mixserve.routing.reassigned_from", result["reassigned_from"])
            for name, score in result.get("scores", {}).items():
                span.set_attribute(f"mixserve.routing.score.{name}", float(score))
        return result

    async def check_health(self) -> None:
        """Serve calls this every few seconds; raising replaces the replica. Healthy: the
        router model is loaded and its compute thread answers."""
        if getattr(self, "router", None) is None:
            raise RuntimeError("the router model is not loaded")
        await asyncio.wait_for(self.compute.run(_noop), HEALTH_TIMEOUT_S)

    async def ready(self) -> bool:
        await self.check_health()
        return True


class RetrieverServer:
    """One collection's retriever: embeds the query, searches the collection's live
    version (hybrid or dense), follows new versions as they are published (opened off
    the search path) and, for a sharded collection, fans out to its shard actors."""

    def __init__(
        self,
        config: RetrievalConfig,
        collection: CollectionSpec,
        data_dir: str,
        cache_dir: str,
        tracing: TraceOptions | None = None,
    ) -> None:
        from retrieval import Retriever

        self.name = collection.name
        self.tracing = Tracing(tracing, f"retriever-{collection.name}")
        self.meter = BusyMeter()
        self.compute = ComputeThread("retriever")
        # one query at a time on one thread: 1.85 ms of CPU a query against 2.85 on two,
        # and no slower (measured here; the ceiling bench's retriever row)
        embedder = make_embedder(config.embedding, Path(cache_dir), threads=1)
        self.retriever = Retriever(
            embedder,
            [collection],
            Path(data_dir),
            hybrid=config.search == "hybrid",
            follow_in_background=True,
        )
        self.compute.run_now(self.retriever.start)
        logger.info("retriever %s ready: %s", self.name, self.retriever.sizes())

    async def search(
        self, query: str, k: int, min_score: float, trace: Carrier | None = None
    ) -> dict[str, Any]:
        """The hits, best first, and the replica busy time charged to this search."""
        attrs = {
            **where(),
            semconv.GEN_AI_OPERATION_NAME: "retrieval",
            semconv.GEN_AI_DATA_SOURCE_ID: self.name,
            "mixserve.retrieval.k": k,
        }
        with self.tracing.span("mixserve.retriever.search", trace, SpanKind.SERVER, attrs) as span:
            token = self.meter.start()
            try:
                hits = await self.compute.run(self.retriever.search, [query], k, min_score)
            finally:
                busy = self.meter.stop(token)
            found = [h.as_dict() for h in hits[0]]
            span.set_attributes(
                {
                    "mixserve.retrieval.source_ids": [str(h.id) for h in hits[0]],
                    "mixserve.retrieval.scores": [float(h.score) for h in hits[0]],
                    "mixserve.busy_s": busy,
                }
            )
            if self.tracing.record_content:
                span.set_attribute(semconv.GEN_AI_RETRIEVAL_QUERY_TEXT, query)
        return {"hits": found, "busy_s": busy}

    async def embed(self, texts: list[str], trace: Carrier | None = None) -> dict[str, Any]:
        """``texts`` embedded as the collection's chunks and queries are (one batch), the
        tokens the encoder read of them, and the busy time charged."""
        attrs = {
            **where(),
            semconv.GEN_AI_OPERATION_NAME: "embeddings",
            "mixserve.inputs": len(texts),
        }
        with self.tracing.span("mixserve.retriever.embed", trace, SpanKind.SERVER, attrs) as span:
            token = self.meter.start()
            try:
                embedder = self.retriever.embedder
                vectors = await self.compute.run(embedder.embed, texts)
                tokens = await self.compute.run(embedder.count_tokens, texts)
            finally:
                busy = self.meter.stop(token)
            span.set_attributes(
                {semconv.GEN_AI_USAGE_INPUT_TOKENS: tokens, "mixserve.busy_s": busy}
            )
        return {"vectors": vectors, "tokens": tokens, "busy_s": busy}

    async def info(self) -> dict[str, Any]:
        """The version served, its size and index, and where its shards run."""
        live = self.retriever.collections[self.name]
        version = live.current
        if version is None:
            return {"collection": self.name, "version": None}
        nodes = await self.compute.run(version.shard_nodes)
        return {
            "collection": self.name,
            "version": version.name,
            "chunks": version.size,
            "index": version.plan.as_dict(),
            "shard_nodes": nodes,
        }

    async def check_health(self) -> None:
        """Healthy: the collection's index is loaded and the compute thread answers (Serve
        replaces a replica whose check raises)."""
        if self.name not in self.retriever.collections:
            raise RuntimeError(f"collection {self.name} not loaded")
        await asyncio.wait_for(self.compute.run(_noop), HEALTH_TIMEOUT_S)

    async def ready(self) -> bool:
        await self.check_health()
        return True


class SpecialistServer:
    """One replica of one engine, serving its specialists (one, or those naming its entry):
    renders each request's prompt for the specialist it names (its own system prompt and
    format, its own LoRA adapter if it has one) and streams from the shared engine.
    Counters, spans and busy time stay per specialist.

    A caller that goes away cancels the stream; the cancellation reaches ``generate`` as
    ``CancelledError`` and the engine aborts the request, freeing its KV cache.
    """

    async def __init__(  # type: ignore[misc]  # Ray Serve awaits async constructors
        self,
        members: list[SpecialistConfig],
        model_dir: str,
        adapters: dict[str, str],
        tracing: TraceOptions | None = None,
        versions: dict[str, str] | None = None,
        templates: dict[str, str] | None = None,
    ) -> None:
        from specialists import Adapter, build_engine, build_solver

        first = members[0]  # config validation made every member agree on the engine
        self.versions = dict(versions or {})  # specialist -> the version this replica serves
        engine_kwargs: dict[str, object] = dict(first.engine_kwargs)
        if first.model.revision is not None:  # every replica loads the same weights
            engine_kwargs.setdefault("revision", first.model.revision)
        self.tracing = Tracing(tracing, first.deployment)
        self.engine_name = first.backend
        self.members = {m.name: m for m in members}
        # specialist -> its chat template's text (none: the model's own)
        self.templates = dict(templates or {})
        self.adapters = {
            name: Adapter(name, number, adapters[name])
            for number, name in enumerate(sorted(adapters), start=1)
        }
        self.engine = build_engine(
            first.backend,
            specialist=first.name if len(members) == 1 else first.deployment,
            model=model_dir,
            max_model_len=first.max_model_len,
            engine_kwargs=engine_kwargs,
            adapters=list(self.adapters.values()),
            tool_parser=first.tool_parser,
            tool_strict_level=first.tool_strict_level,
        )
        # specialists with a solver in front of the engine (the symbolic math engine)
        self.solvers = {
            m.name: build_solver(m.solver, inner=self.engine, timeout_s=m.solver_timeout_s)
            for m in members
            if m.solver is not None
        }
        self.meter = BusyMeter()
        self.stats = {m.name: dict.fromkeys(STAT_NAMES, 0) for m in members}
        if first.nice:  # before the engine starts: its processes inherit it
            os.nice(first.nice)
        if first.cpu_binding == "all":  # read by vLLM's CPU backend when its engine starts
            os.environ["VLLM_CPU_OMP_THREADS_BIND"] = all_cpus()
        started = time.monotonic()
        await asyncio.wait_for(self.engine.start(), first.start_timeout_s)
        for solver in self.solvers.values():
            await asyncio.wait_for(solver.start(), first.start_timeout_s)
        logger.info(
            "%s ready in %.1fs, serving %s",
            first.deployment,
            time.monotonic() - started,
            ", ".join(self.members),
        )

    async def generate(self, call: EngineCall) -> AsyncIterator[dict[str, Any]]:
        from specialists import GenerationRequest
        from specialists.conversation import chat_messages
        from specialists.stream_batch import batched

        name = call.specialist
        spec = self.members.get(name)
        if spec is None:
            raise ValueError(f"{name!r} is not served here (serving: {', '.join(self.members)})")
        body = call.body
        turns = [m.as_dict() for m in body.messages]
        asked = [m.content for m in body.messages if m.role == "user"]
        request = GenerationRequest(
            request_id=call.request_id,
            messages=chat_messages(spec.system_prompt, turns, list(call.passages)),
            max_tokens=body.max_tokens,
            temperature=body.temperature,
            top_p=body.top_p,
            stop=[*body.stop, *spec.stop],
            seed=body.seed,
            logprobs=body.logprobs,
            top_logprobs=body.top_logprobs,
            presence_penalty=body.presence_penalty or 0.0,
            frequency_penalty=body.frequency_penalty or 0.0,
            logit_bias=body.logit_bias,
            response_format=body.response_format,
            tools=body.tools,
            tool_choice=body.tool_choice,
            parallel_tool_calls=body.parallel_tool_calls,
            n=body.n,
            prompt=body.prompt,
            chat_template=self.templates.get(name),
            specialist=name,
            adapter=self.adapters.get(name),
            continuation=call.continuation,
            question=asked[-1] if asked else "",
        )
        engine = self.solvers.get(name, self.engine)
        span = self.tracing.start(
            "mixserve.specialist.generate",
            call.trace,
            SpanKind.SERVER,
            self._attrs(call),
        )
        received = time.monotonic()
        stats = self.stats[name]
        stats["in_flight"] += 1
        finished = False
        token, charged = self.meter.start(), False
        stream = batched(engine.generate(request), spec.stream_batch_ms / 1000)
        try:
            last: dict[str, Any] = {
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "cumulative_logprob": None,
            }
            async for chunk in stream:
                if "text" not in last:
                    span.set_attribute(
                        semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, time.monotonic() - received
                    )
                last = {
                    "text": chunk.text,
                    "prompt_tokens": chunk.prompt_tokens,
                    "completion_tokens": chunk.completion_tokens,
                    "finish_reason": chunk.finish_reason,
                    "cumulative_logprob": chunk.cumulative_logprob,
                    "cached_tokens": chunk.cached_tokens,
                    "method": chunk.method,
                }
                if chunk.logprobs is not None:  # this chunk's tokens, as OpenAI lists them
                    last["logprobs"] = chunk.logprobs
                if chunk.tool_calls:
                    last["tool_calls"] = chunk.tool_calls
                if chunk.index:  # one of n choices
                    last["index"] = chunk.index
                yield last
            # a closing item with no text: this request's share of the replica's busy time
            busy, charged = self.meter.stop(token), True
            span.set_attributes(
                {
                    semconv.GEN_AI_USAGE_INPUT_TOKENS: int(last["prompt_tokens"]),
                    semconv.GEN_AI_USAGE_OUTPUT_TOKENS: int(last["completion_tokens"]),
                    semconv.GEN_AI_RESPONSE_FINISH_REASONS: [str(last.get("finish_reason"))],
                    "mixserve.busy_s": busy,
                }
            )
            if last.get("method"):
                span.set_attribute("mixserve.answer.method", str(last["method"]))
            closing = {"text": "", "finish_reason": None, "logprobs": None, "tool_calls": None}
            yield {**last, **closing, "busy_s": busy}
            finished = True
            stats["served"] += 1
        except (asyncio.CancelledError, GeneratorExit) as exc:
            stats["aborted"] += 1  # the engine aborts the request itself (its contract)
            fail(span, exc, 499)
            raise
        except Exception as exc:
            stats["failed"] += 1
            fail(span, exc)
            raise
        finally:
            await stream.aclose()  # a caller gone mid-answer: the engine aborts now
            if not charged:
                self.meter.stop(token)
            stats["in_flight"] -= 1
            span.end()
            if not finished:
                logger.info("request %s ended early", request.request_id)

    def _attrs(self, call: EngineCall) -> dict[str, AttributeValue]:
        name = call.specialist
        attrs: dict[str, AttributeValue] = {
            **where(),
            semconv.GEN_AI_OPERATION_NAME: "chat",
            semconv.GEN_AI_REQUEST_MODEL: name,
            semconv.GEN_AI_RESPONSE_MODEL: name,
            semconv.GEN_AI_REQUEST_MAX_TOKENS: call.body.max_tokens,
            "mixserve.specialist": name,
            "mixserve.engine": self.engine_name,
            "mixserve.deployment": self.tracing.component,
            "mixserve.request_id": call.request_id,
        }
        if name in self.adapters:
            attrs["mixserve.lora"] = name
        if call.sent_at is not None:  # handle queue and transfer (clock skew across nodes)
            attrs["mixserve.queue_wait_s"] = max(0.0, time.time() - call.sent_at)
        return attrs

    async def get_stats(self) -> dict[str, Any]:
        """Totals over the specialists served here, each one's own, the engine's count of
        unfinished requests (running or waiting, whichever specialist asked) and its load
        as the replica router sees it."""
        totals = {k: sum(s[k] for s in self.stats.values()) for k in STAT_NAMES}
        by_specialist = {n: dict(s) for n, s in self.stats.items()}
        unfinished = self.engine.num_unfinished()
        return {
            **totals,
            "engine_unfinished": unfinished,
            "engine_load": self.engine.load().as_dict(),
            "by_specialist": by_specialist,
            "versions": self.versions,
            "node": where().get("mixserve.node", ""),
            "replica": where().get("mixserve.replica", ""),
            "pid": os.getpid(),
        }

    def record_routing_stats(self) -> dict[str, Any]:
        """Serve polls this for the specialists' request router (``replica_router``): the
        engine's running and waiting sequences, KV-cache use and prefix-cache counts, and
        the requests this replica holds."""
        in_flight = sum(s["in_flight"] for s in self.stats.values())
        return {**self.engine.load().as_dict(), "in_flight": in_flight}

    async def ready(self) -> bool:
        await self.engine.check_health()
        return True

    async def check_health(self) -> None:
        # Serve calls this periodically; raising marks the replica unhealthy and replaces it.
        await self.engine.check_health()

    def __del__(self) -> None:
        # Serve calls __del__ on graceful replica shutdown: stop vLLM's engine processes so
        # they are not left behind re-parented to init.
        for solver in getattr(self, "solvers", {}).values():
            try:
                solver.shutdown()
            except Exception:
                logger.exception("solver shutdown failed")
        engine = getattr(self, "engine", None)
        if engine is not None:
            try:
                engine.shutdown()
            except Exception:
                logger.exception("engine shutdown failed")


class EngineFront:
    """The ingress of an engine's own Serve application. Serve wants one per application,
    and under HAProxy an ingress may not have a custom request router, which the engine
    deployment has; so the engine sits behind this, and every call goes to the engine
    by name (``serving.EngineAddress``). It holds the engine's handle and answers for
    its readiness; it takes no traffic."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    async def ready(self) -> bool:
        return bool(await self.engine.ready.remote())
