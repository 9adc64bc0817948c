"""HTTP plumbing of the gateway: header checks, request ids, body parsing and validation,
and the error handlers that turn every failure into an OpenAI-style error body.

Whatever a client sends, the answer is a 4xx naming the problem, never a 500: bodies that
are not JSON, JSON nested past ``MAX_JSON_DEPTH``, strings with lone UTF-16 surrogates
(valid JSON escapes, but not text that can be encoded), and every schema violation.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator.errors import APIError, from_exception, from_validation_errors

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
MAX_JSON_DEPTH = 64  # far more than any chat request needs; bounds recursion below
logger = logging.getLogger(__name__)


def check_headers(request: Request, max_bytes: int) -> None:
    """Refuse oversized headers (431) and a malformed ``x-request-id`` (400), naming the
    problem. (Headers HTTP itself forbids, such as control characters, and headers past
    the front proxy's buffer never get here: HAProxy, or Serve's proxy, answers those
    with a plain 400. ``mixserve up`` sizes HAProxy's buffer at twice this limit.)"""
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
    """The request's body as JSON (``parse_json``), refusing a declared size over
    ``limit`` before reading it."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"request body is larger than {limit} bytes", code="body_too_large")
    return parse_json(await request.body(), limit)


def parse_json(raw: bytes, limit: int) -> Any:
    """``raw`` as JSON, or a 4xx naming why it cannot be: too large, empty, not JSON,
    nested too deep, or holding a string that is not text."""
    if len(raw) > limit:
        raise APIError(413, f"request body is larger than {limit} bytes", code="body_too_large")
    if not raw.strip():
        raise APIError(400, "request body is empty; send a JSON object", code="invalid_json")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise APIError(400, f"request body is not valid JSON: {exc}", code="invalid_json") from None
    except RecursionError:  # deeper than the parser goes
        problem: str | None = f"nested deeper than {MAX_JSON_DEPTH} levels"
    else:
        problem = _check_json(data)
    if problem:
        raise APIError(400, f"request body is not acceptable JSON: {problem}", code="invalid_json")
    return data


def _check_json(data: Any) -> str | None:
    """What makes parsed JSON unusable, or None: nesting past ``MAX_JSON_DEPTH``, or a
    string (key or value) holding a lone surrogate. Iterative, so any depth is safe; the
    path it names is escaped, since it is made of the client's own keys."""
    stack: list[tuple[Any, int, str]] = [(data, 1, "body")]
    while stack:
        value, depth, where = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return f"nested deeper than {MAX_JSON_DEPTH} levels"
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return f"{where} holds a lone UTF-16 surrogate (\\ud800-\\udfff), not text"
        elif isinstance(value, dict):
            for k, v in value.items():
                stack.append((k, depth + 1, f"a key of {where}"))
                stack.append((v, depth + 1, f"{where}.{_printable(k)}"[:200]))
        elif isinstance(value, list):
            stack.extend((v, depth + 1, f"{where}[{i}]") for i, v in enumerate(value))
    return None


def _printable(text: str) -> str:
    """``text`` as it may appear in a response: lone surrogates as ``\\udXXX`` escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def event_stream(events: AsyncIterator[bytes], headers: dict[str, str]) -> StreamingResponse:
    """A server-sent events response, never cached on the way."""
    return StreamingResponse(
        events, media_type="text/event-stream", headers={**headers, "cache-control": "no-cache"}
    )


def validate(model: type[Any], data: Any) -> Any:
    if not isinstance(data, dict):
        raise APIError(400, "request body must be a JSON object", code="invalid_request")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation_errors(exc.errors(include_url=False)) from None
    except ValueError as exc:  # a schema method's own refusal (e.g. a content part)
        raise APIError(400, str(exc), code="invalid_value") from None


def error_response(err: APIError) -> JSONResponse:
    # Ray Serve's proxy adds the x-request-id header to every response itself. A message
    # quoting the client's input must still encode: escape what UTF-8 cannot hold.
    fields = err.body()["error"]
    body = {"error": {k: None if v is None else _printable(v) for k, v in fields.items()}}
    return JSONResponse(body, status_code=err.status, headers=err.headers())


def install_error_handlers(app: FastAPI) -> None:
    """Every failure leaves as an OpenAI-style error body (never a stack trace)."""

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else "method_not_allowed"
        msg = f"{request.method} {request.url.path}: {exc.detail}"
        return error_response(APIError(exc.status_code, msg, code=code))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        rid = request_id_of(request)
        logger.exception("unhandled error in request %s", rid)
        return error_response(from_exception(exc, rid))
