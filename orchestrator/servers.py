"""The classes each Ray Serve deployment runs: router, retriever and one per specialist.

They are plain classes; ``orchestrator.app`` wraps them with ``serve.deployment`` and the
per-deployment options from config. Heavy imports stay inside methods so the gateway,
which imports this module's names only through handles, never loads torch or vLLM.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ray import serve

logger = logging.getLogger(__name__)


class RouterServer:
    """Runs the router LLM; concurrent queries are batched into one forward pass."""

    def __init__(
        self, model_dir: str, profiles: list[dict[str, Any]], options: dict[str, Any]
    ) -> None:
        from router_model import SpecialistProfile, build_router

        started = time.monotonic()
        self.router = build_router(
            model_dir,
            [
                SpecialistProfile(p["name"], p["description"], p["examples"], p["relative_cost"])
                for p in profiles
            ],
            **options,
        )
        logger.info("router ready in %.1fs", time.monotonic() - started)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.002)
    async def _route(self, requests: list[tuple[str, float | None]]) -> list[dict[str, Any]]:
        queries = [q for q, _ in requests]
        tradeoffs = [t for _, t in requests]
        started = time.monotonic()
        decisions = await asyncio.to_thread(self.router.route_batch, queries, tradeoffs)
        # batches run one at a time: each query is charged an equal share of its batch
        share = (time.monotonic() - started) / len(requests)
        return [{**d.as_dict(), "busy_s": share} for d in decisions]

    async def route(self, query: str, tradeoff: float | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self._route((query, tradeoff))
        return result

    async def ready(self) -> bool:
        return True


class RetrieverServer:
    def __init__(
        self, collections: list[dict[str, Any]], embedding_package: str, index_dir: str
    ) -> None:
        from retrieval import CollectionSpec, Retriever, SentenceEmbedder

        specs = [
            CollectionSpec(
                c["name"],
                [Path(p) for p in c["paths"]],
                Path(c["root"]),
                c["chunk_chars"],
                c["chunk_overlap"],
            )
            for c in collections
        ]
        from orchestrator.costs import BusyMeter

        self.meter = BusyMeter()
        self.retriever = Retriever(SentenceEmbedder(embedding_package), specs, Path(index_dir))
        self.retriever.start()
        counts = {n: len(i.passages) for n, i in self.retriever.indexes.items()}
        logger.info("retriever ready: %s", counts)

    async def search(self, query: str, k: int, min_score: float) -> dict[str, Any]:
        """The hits, and the replica busy time charged to this search."""
        token = self.meter.start()
        try:
            hits = await asyncio.to_thread(self.retriever.search, [query], k, min_score)
        finally:
            busy = self.meter.stop(token)
        return {"hits": [h.as_dict() for h in hits[0]], "busy_s": busy}

    async def ready(self) -> bool:
        return True


class SpecialistServer:
    """One replica of one specialist: renders the prompt, streams from its engine.

    A caller that goes away cancels the stream; the cancellation reaches ``generate`` as
    ``CancelledError`` and the engine aborts the request, freeing its KV cache.
    """

    async def __init__(  # type: ignore[misc]  # Ray Serve awaits async constructors
        self,
        name: str,
        engine: str,
        model: str,
        prompt_format: str,
        system_prompt: str,
        max_model_len: int,
        engine_kwargs: dict[str, Any],
        start_timeout_s: float,
    ) -> None:
        from specialists.registry import build_engine

        self.name = name
        self.prompt_format = prompt_format
        self.system_prompt = system_prompt
        self.engine = build_engine(
            engine,
            specialist=name,
            model=model,
            max_model_len=max_model_len,
            engine_kwargs=engine_kwargs,
        )
        from orchestrator.costs import BusyMeter

        self.meter = BusyMeter()
        self.stats = {"served": 0, "aborted": 0, "failed": 0, "in_flight": 0}
        started = time.monotonic()
        await asyncio.wait_for(self.engine.start(), start_timeout_s)
        logger.info("specialist %s ready in %.1fs", name, time.monotonic() - started)

    async def generate(self, payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        from specialists.engine import GenerationRequest
        from specialists.prompts import STOP_STRINGS, Turn, render

        turns = [Turn(role, content) for role, content in payload["messages"]]
        passages = [(src, text) for src, text in payload.get("passages", [])]
        prompt = render(self.prompt_format, self.system_prompt, turns, passages)
        request = GenerationRequest(
            request_id=payload["request_id"],
            prompt=prompt,
            max_tokens=int(payload["max_tokens"]),
            temperature=float(payload.get("temperature", 0.0)),
            top_p=float(payload.get("top_p", 1.0)),
            stop=[*payload.get("stop", []), *STOP_STRINGS.get(self.prompt_format, [])],
            seed=payload.get("seed"),
            logprobs=bool(payload.get("logprobs", False)),
        )
        self.stats["in_flight"] += 1
        finished = False
        token, charged = self.meter.start(), False
        try:
            last: dict[str, Any] = {
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "cumulative_logprob": None,
            }
            async for chunk in self.engine.generate(request):
                last = {
                    "text": chunk.text,
                    "prompt_tokens": chunk.prompt_tokens,
                    "completion_tokens": chunk.completion_tokens,
                    "finish_reason": chunk.finish_reason,
                    "cumulative_logprob": chunk.cumulative_logprob,
                }
                yield last
            # a closing item with no text: this request's share of the replica's busy time
            busy, charged = self.meter.stop(token), True
            yield {**last, "text": "", "finish_reason": None, "busy_s": busy}
            finished = True
            self.stats["served"] += 1
        except (asyncio.CancelledError, GeneratorExit):
            self.stats["aborted"] += 1  # the engine aborts the request itself (its contract)
            raise
        except Exception:
            self.stats["failed"] += 1
            raise
        finally:
            if not charged:
                self.meter.stop(token)
            self.stats["in_flight"] -= 1
            if not finished:
                logger.info("request %s ended early", request.request_id)

    async def get_stats(self) -> dict[str, int]:
        return {**self.stats, "engine_unfinished": self.engine.num_unfinished()}

    async def ready(self) -> bool:
        await self.engine.check_health()
        return True

    async def check_health(self) -> None:
        # Serve calls this periodically; raising marks the replica unhealthy and replaces it.
        await self.engine.check_health()

    def __del__(self) -> None:
        # Serve calls __del__ on graceful replica shutdown: stop vLLM's engine processes so
        # they are not left behind re-parented to init.
        engine = getattr(self, "engine", None)
        if engine is not None:
            try:
                engine.shutdown()
            except Exception:
                logger.exception("engine shutdown failed")
