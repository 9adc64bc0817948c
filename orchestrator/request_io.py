"""Request plumbing of the gateway: request ids, body parsing, plans and answers."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from pydantic import ValidationError

from orchestrator.errors import APIError, from_validation_errors

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass
class Plan:
    request_id: str
    specialist: str
    payload: dict[str, Any]
    meta: dict[str, Any]
    cache_key: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Answer:
    """An answer accumulated from a specialist's chunks (token counts are cumulative)."""

    parts: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"

    def absorb(self, item: dict[str, Any]) -> str:
        self.parts.append(item["text"])
        self.prompt_tokens = int(item["prompt_tokens"])
        self.completion_tokens = int(item["completion_tokens"])
        self.finish_reason = item["finish_reason"] or self.finish_reason
        return str(item["text"])

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": "".join(self.parts),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "finish_reason": self.finish_reason,
        }


async def replay(cached: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    yield cached


def request_id_of(request: Request) -> str:
    given = request.headers.get("x-request-id", "")
    return given if _REQUEST_ID.match(given) else f"req-{uuid.uuid4().hex}"


async def read_json(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"request body is larger than {limit} bytes", code="body_too_large")
    raw = await request.body()
    if len(raw) > limit:
        raise APIError(413, f"request body is larger than {limit} bytes", code="body_too_large")
    if not raw.strip():
        raise APIError(400, "request body is empty; send a JSON object", code="invalid_json")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise APIError(400, f"request body is not valid JSON: {exc}", code="invalid_json") from None


def validate(model: type[Any], data: Any) -> Any:
    if not isinstance(data, dict):
        raise APIError(400, "request body must be a JSON object", code="invalid_request")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation_errors(exc.errors(include_url=False)) from None
