"""Request plumbing of the gateway: request ids, body parsing, plans and answers."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator import openai_format as fmt
from orchestrator.config import PolicyConfig
from orchestrator.errors import APIError, from_exception, from_validation_errors, status_of
from orchestrator.keys import KeyRecord
from orchestrator.policies import PolicySettings
from orchestrator.schemas import MixserveOptions

if TYPE_CHECKING:
    from orchestrator.request_trace import RequestTrace

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
logger = logging.getLogger(__name__)


@dataclass
class Plan:
    request_id: str
    specialist: str
    payload: dict[str, Any]
    meta: dict[str, Any]
    cache_key: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    policy: str = "single"
    settings: PolicySettings = field(default_factory=PolicySettings)
    deadline: float = 0.0  # event-loop time by which every call of the request must end
    router_busy_s: float = 0.0
    retrieval_busy_s: float = 0.0
    key: KeyRecord | None = None  # the caller's API key, when auth is on
    started: float = field(default_factory=time.monotonic)
    closed: bool = False  # settled in the ledger (exactly once)
    first_token: bool = False  # time to first token observed
    # the ledger's idempotency id: drawn here, since clients choose (and may repeat) ids
    settle_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    trace: RequestTrace | None = None


@dataclass
class Answer:
    """An answer accumulated from a specialist's chunks (token counts are cumulative)."""

    parts: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    busy_s: float = 0.0  # the specialist replica's busy time charged to this answer

    def absorb(self, item: dict[str, Any]) -> str:
        self.parts.append(item["text"])
        self.prompt_tokens = int(item["prompt_tokens"])
        self.completion_tokens = int(item["completion_tokens"])
        self.finish_reason = item["finish_reason"] or self.finish_reason
        self.busy_s = float(item.get("busy_s") or self.busy_s)
        return str(item["text"])

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": "".join(self.parts),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "finish_reason": self.finish_reason,
            "busy_s": self.busy_s,
        }


def settle_calls(calls: list[dict[str, Any]], answer: Answer, cached: bool) -> dict[str, Any]:
    """Put the streamed call's tokens and busy time in; usage summed over every call."""
    for call in calls:
        if call["outcome"] == "streamed" and not cached:
            call["prompt_tokens"] = answer.prompt_tokens
            call["completion_tokens"] = answer.completion_tokens
            call["busy_s"] = answer.busy_s
    if not calls:  # a cache entry from before policies
        return fmt.usage(answer.prompt_tokens, answer.completion_tokens)
    return fmt.usage(
        sum(int(c["prompt_tokens"]) for c in calls),
        sum(int(c["completion_tokens"]) for c in calls),
    )


def select_passages(
    hits: list[dict[str, Any]], max_chars: int
) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    """The best hits that fit in ``max_chars`` (as prompt passages) and their sources."""
    passages, budget = [], max_chars
    for hit in hits:
        if len(hit["text"]) > budget:
            break
        budget -= len(hit["text"])
        passages.append((hit["source"], hit["text"]))
    keys = ("id", "collection", "source", "score")
    return passages, [{k: h[k] for k in keys} for h in hits[: len(passages)]]


def policy_for(
    config: PolicyConfig, model: str, options: MixserveOptions | None
) -> tuple[str, PolicySettings]:
    """The request's policy and its settings: config, with the request's overrides.

    A pinned specialist answers alone; asking a pinned request for another policy is an
    error. Overrides may tune a policy but never raise ``max_calls`` or the token bound.
    """
    asked = options.policy if options else None
    if model != "auto" and asked not in (None, "single"):
        raise APIError(
            400,
            f"policy '{asked}' needs model 'auto' (the router picks its specialists); "
            f"'{model}' pins one specialist",
            param="mixserve.policy",
            code="invalid_value",
        )
    policy = "single" if model != "auto" else asked or config.default
    cascade = options.cascade if options and options.cascade else None
    ensemble = options.ensemble if options and options.ensemble else None
    top_k = ensemble.top_k if ensemble and ensemble.top_k is not None else config.ensemble.top_k
    if policy == "ensemble" and top_k + 1 > config.max_calls:
        raise APIError(
            400,
            f"an ensemble of {top_k} plus its synthesis exceeds this service's "
            f"max_calls of {config.max_calls}",
            param="mixserve.ensemble.top_k",
            code="invalid_value",
        )

    def pick(override: float | None, default: float) -> float:
        return default if override is None else override

    settings = PolicySettings(
        max_calls=config.max_calls,
        max_total_tokens=config.max_total_tokens,
        min_mean_logprob=pick(
            cascade.min_mean_logprob if cascade else None, config.cascade.min_mean_logprob
        ),
        min_quality=pick(cascade.min_quality if cascade else None, config.cascade.min_quality),
        top_k=top_k,
        synthesizer=config.ensemble.synthesizer,
    )
    return policy, settings


async def replay(cached: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    yield cached


def outcome_of(exc: BaseException) -> str:
    """How a failed request is recorded: ``error <HTTP status>``, or ``disconnected``."""
    status = status_of(exc)
    return "disconnected" if status == 499 else f"error {status}"


def check_headers(request: Request, max_bytes: int) -> None:
    """Refuse oversized headers (431) and a malformed ``x-request-id`` (400), naming the
    problem. (Headers HTTP itself forbids, such as control characters, never get here:
    the Serve proxy answers those with a plain 400.)"""
    size = sum(len(name) + len(value) + 4 for name, value in request.headers.raw)
    if size > max_bytes:
        raise APIError(
            431,
            f"request headers are {size} bytes, above this service's limit of {max_bytes}",
            code="headers_too_large",
        )
    given = request.headers.get("x-request-id")
    if given is not None and not _REQUEST_ID.match(given):
        raise APIError(
            400,
            "x-request-id must be 1 to 64 letters, digits or '._:-' characters",
            param="x-request-id",
            code="invalid_header",
        )


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


def _error_response(err: APIError) -> JSONResponse:
    # Ray Serve's proxy adds the x-request-id header to every response itself.
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers())


def install_error_handlers(app: FastAPI) -> None:
    """Every failure leaves as an OpenAI-style error body (never a stack trace)."""

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return _error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else "method_not_allowed"
        msg = f"{request.method} {request.url.path}: {exc.detail}"
        return _error_response(APIError(exc.status_code, msg, code=code))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        rid = request_id_of(request)
        logger.exception("unhandled error in request %s", rid)
        return _error_response(from_exception(exc, rid))
