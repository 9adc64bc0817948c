"""``POST /v1/retrieval/search``: one collection's best passages for a query, as the
retriever finds them for a prompt (hybrid or dense, per the config), without a model call;
``GET /v1/retrieval/collections``: each collection's live version, size, index and shards.

An unknown collection is a 404 naming the ones there are; a retriever that fails or does
not answer within ``retrieval.timeout_s`` is a 503 with ``Retry-After`` (a search has no
ungrounded answer to fall back on, unlike a chat request).
"""

from __future__ import annotations

import asyncio
from typing import Any

from opentelemetry.trace import SpanKind

from orchestrator.config import MixserveConfig
from orchestrator.errors import APIError
from orchestrator.serving.protocol import SearchRequest
from orchestrator.telemetry import RequestTrace

RETRY_AFTER_S = 2


def unavailable(what: str, exc: Exception, code: str) -> APIError:
    """A 503 with ``Retry-After`` for a retriever deployment that failed or timed out."""
    problem = "did not answer in time" if isinstance(exc, TimeoutError) else "failed"
    return APIError(
        503,
        f"{what} {problem}; try again shortly",
        type="server_error",
        code=code,
        retry_after_s=RETRY_AFTER_S,
    )


def collection_names(config: MixserveConfig) -> list[str]:
    if not config.retrieval.enabled:
        return []
    return [c.name for c in config.retrieval.collections]


async def search(
    config: MixserveConfig, retrievers: dict[str, Any], trace: RequestTrace, body: SearchRequest
) -> dict[str, Any]:
    names = collection_names(config)
    retriever = retrievers.get(body.collection)
    if body.collection not in names or retriever is None:
        there = ", ".join(repr(n) for n in names) or "none (retrieval is off)"
        raise APIError(
            404,
            f"collection {body.collection!r} does not exist; this service has {there}",
            param="collection",
            code="collection_not_found",
        )
    with trace.child("mixserve.retrieval", SpanKind.CLIENT) as span:
        try:
            found: dict[str, Any] = await asyncio.wait_for(
                retriever.search.remote(
                    body.query, body.top_k, body.min_score, trace.carrier(span)
                ),
                config.retrieval.timeout_s,
            )
        except Exception as exc:  # noqa: BLE001 - any retriever failure is the same 503
            what = f"the retriever of collection {body.collection!r}"
            raise unavailable(what, exc, "retriever_unavailable") from None
        span.set_attribute("mixserve.retrieval.hits", len(found["hits"]))
    return {
        "object": "list",
        "collection": body.collection,
        "data": [
            {k: h[k] for k in ("source", "offset", "score", "text", "heading", "id")}
            for h in found["hits"]
        ],
    }


async def describe(config: MixserveConfig, retrievers: dict[str, Any]) -> dict[str, Any]:
    """Each configured collection as its retriever serves it (version, chunks, index,
    the node of each shard), or ``"status": "unavailable"`` when it does not answer."""

    async def one(name: str) -> dict[str, Any]:
        try:
            info: dict[str, Any] = await asyncio.wait_for(
                retrievers[name].info.remote(), config.retrieval.timeout_s
            )
            return {**info, "status": "ready" if info.get("version") else "empty"}
        except Exception as exc:  # noqa: BLE001 - any failure to answer is the same
            return {"collection": name, "status": f"unavailable ({type(exc).__name__})"}

    names = [n for n in collection_names(config) if n in retrievers]
    return {"object": "list", "data": list(await asyncio.gather(*(one(n) for n in names)))}
