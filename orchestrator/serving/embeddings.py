"""``POST /v1/embeddings``: texts embedded by the retrieval encoder (served under its
package's name as a model id), the same vectors the collections store and their queries
are searched with, so a client can search, cluster or cache with them; one request's
inputs are one batch on a retriever replica.

OpenAI's token-id inputs and a ``dimensions`` other than the encoder's are refused by
name; an input over the encoder's window is cut at it, as the collections' chunks are.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any, Literal

import numpy as np
from opentelemetry.trace import SpanKind
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

from orchestrator.config import MixserveConfig
from orchestrator.errors import APIError
from orchestrator.serving.search import unavailable
from orchestrator.telemetry import RequestTrace

MAX_INPUTS = 2048  # OpenAI's bound on inputs per request
MAX_INPUT_CHARS = 100_000


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: StrictStr = Field(min_length=1)
    input: StrictStr | list[StrictStr] = Field(description="A text or a list of texts.")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: StrictInt | None = Field(None, ge=1)
    user: StrictStr | None = Field(None, max_length=256)

    @field_validator("input", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> Any:
        if isinstance(value, list) and value and not all(isinstance(v, str) for v in value):
            raise ValueError("token-id inputs are not supported; send text")
        return value

    @field_validator("input")
    @classmethod
    def _bounded(cls, value: str | list[str]) -> str | list[str]:
        texts = [value] if isinstance(value, str) else value
        if not texts or len(texts) > MAX_INPUTS:
            raise ValueError(f"between 1 and {MAX_INPUTS} inputs")
        for text in texts:
            if not text.strip() or len(text) > MAX_INPUT_CHARS:
                raise ValueError(
                    f"every input is non-blank text of at most {MAX_INPUT_CHARS} chars"
                )
        return value

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


def embedding_model(config: MixserveConfig) -> str | None:
    """The embedding model's id (its package's name); None without collections."""
    if not (config.retrieval.enabled and config.retrieval.collections):
        return None
    return config.retrieval.embedding.package


async def embed(
    config: MixserveConfig,
    retrievers: dict[str, Any],
    trace: RequestTrace,
    body: EmbeddingRequest,
) -> dict[str, Any]:
    name = embedding_model(config)
    handles = [h for h in retrievers.values() if h is not None]
    if body.model != name or not handles:
        there = repr(name) if name else "none (retrieval is off)"
        raise APIError(
            404,
            f"the embedding model {body.model!r} does not exist; this service has {there}",
            param="model",
            code="model_not_found",
        )
    texts = body.texts()
    with trace.child("mixserve.embeddings", SpanKind.CLIENT) as span:
        try:
            out: dict[str, Any] = await asyncio.wait_for(
                handles[0].embed.remote(texts, trace.carrier(span)),
                config.retrieval.timeout_s + len(texts) * 0.05,
            )
        except Exception as exc:  # noqa: BLE001 - any encoder failure is the same 503
            raise unavailable("the embedding model", exc, "embedder_unavailable") from None
    vectors = np.asarray(out["vectors"], dtype=np.float32)
    if body.dimensions is not None and body.dimensions != vectors.shape[1]:
        raise APIError(
            400,
            f"dimensions is {body.dimensions}; {name} gives {vectors.shape[1]} (it cannot "
            "shorten its vectors)",
            param="dimensions",
            code="invalid_value",
        )
    tokens = int(out["tokens"])
    return {
        "object": "list",
        "model": name,
        "data": [
            {"object": "embedding", "index": i, "embedding": _encoded(v, body.encoding_format)}
            for i, v in enumerate(vectors)
        ],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _encoded(vector: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":  # little-endian float32, as OpenAI's SDK decodes it
        return base64.b64encode(vector.astype("<f4").tobytes()).decode()
    return [float(x) for x in vector]
