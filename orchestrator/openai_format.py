"""Builders for OpenAI-format bodies and server-sent events."""

from __future__ import annotations

import json
import time
from typing import Any


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion(
    request_id: str,
    model: str,
    text: str,
    finish_reason: str | None,
    usage: dict[str, Any],
    meta: dict[str, Any],
) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason or "stop",
                "logprobs": None,
            }
        ],
        "usage": usage,
        "mixserve": meta,
    }


def chunk(
    request_id: str,
    model: str,
    created: int,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }
    if extra:
        body.update(extra)
    return body


def model_list(entries: list[tuple[str, str]]) -> dict[str, Any]:
    """``GET /v1/models``: (id, description) pairs as OpenAI model objects."""
    data = [
        {"id": name, "object": "model", "created": 0, "owned_by": "mixserve", "description": d}
        for name, d in entries
    ]
    return {"object": "list", "data": data}


def sse(data: dict[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()
