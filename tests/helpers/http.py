"""Requests to a running service, as the tests make them."""

from __future__ import annotations

import json
from typing import Any

import httpx


def chat(client: httpx.Client, content: str, **extra: Any) -> httpx.Response:
    """``POST /v1/chat/completions`` with one user message (``model: auto`` unless given)."""
    body = {"model": "auto", "messages": [{"role": "user", "content": content}], **extra}
    return client.post("/v1/chat/completions", json=body)


def ask(client: httpx.Client, content: str, **extra: Any) -> httpx.Response:
    """``chat`` as the real-model tests ask: deterministic and short."""
    return chat(client, content, **{"temperature": 0, "max_tokens": 48, **extra})


def sse_events(text: str) -> list[dict[str, Any]]:
    """The JSON events of a server-sent events body, which must end with ``[DONE]``."""
    events = [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


def auth(service: Any) -> dict[str, str]:
    """The integration app runs with API keys on: every call carries the test tenant's."""
    return {"authorization": f"Bearer {service.api_key}"}
