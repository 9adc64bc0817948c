"""Error mapping: every failure leaves the gateway as an OpenAI-style error body.

Bad input is a 4xx naming the problem; overload is 429/503 with ``Retry-After``; anything
unexpected is a 500 whose body carries only the request id, never a stack trace.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from specialists.errors import ContextLengthError, EngineOverloadedError


class APIError(Exception):
    """An error the gateway answers with ``status`` and an OpenAI-style body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.retry_after_s = retry_after_s
        self.extra_headers: dict[str, str] = {}

    def body(self) -> dict[str, dict[str, str | None]]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def headers(self) -> dict[str, str]:
        retry = {} if self.retry_after_s is None else {"Retry-After": str(self.retry_after_s)}
        return {**retry, **self.extra_headers}


def _param_from_loc(loc: Sequence[object]) -> str | None:
    parts = [p for p in loc if p != "body"]
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


def from_validation_errors(errors: Sequence[Any]) -> APIError:
    """Map FastAPI/pydantic validation errors to one 400 naming the first bad field."""
    if not errors:
        return APIError(400, "invalid request body", code="invalid_request")
    first = errors[0]
    loc = first.get("loc") or ()
    err_type = str(first.get("type", ""))
    param = _param_from_loc(loc if isinstance(loc, (list, tuple)) else ())
    msg = str(first.get("msg", "invalid value"))
    if err_type == "missing":
        message = f"missing required parameter '{param}'"
        code = "missing_required_parameter"
    elif err_type == "extra_forbidden":
        message = f"unrecognized request argument supplied: '{param}'"
        code = "unknown_parameter"
    elif param is None:
        message = f"invalid request body: {msg}"
        code = "invalid_request"
    else:
        message = f"invalid value for '{param}': {msg}"
        code = "invalid_value"
    more = len(errors) - 1
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return APIError(400, message, param=param, code=code)


def unknown_model(model: str, known: Sequence[str]) -> APIError:
    return APIError(
        404,
        f"the model '{model}' does not exist; choose 'auto' or one of: {', '.join(known)}",
        param="model",
        code="model_not_found",
    )


def from_exception(exc: BaseException, request_id: str) -> APIError:
    """Map an exception raised anywhere behind the gateway (also across Ray) to an error."""
    cause = getattr(exc, "cause", None) or exc
    if isinstance(exc, APIError):
        return exc
    if isinstance(cause, ContextLengthError):
        return APIError(400, str(cause), param="messages", code="context_length_exceeded")
    # imported here: `ray.serve` pulls in the whole of Serve and FastAPI, which the CLI
    # (it imports this module through billing) must not pay for
    from ray.serve.exceptions import BackPressureError

    if isinstance(exc, BackPressureError):  # Serve's queue bound (its BackpressureConfig)
        return APIError(
            exc.status_code if exc.status_code in (429, 503) else 503,
            "the service is at capacity; retry shortly",
            type="overloaded_error",
            code="overloaded",
            retry_after_s=max(1, math.ceil(exc.retry_after_s or 1)),
        )
    if isinstance(cause, EngineOverloadedError):
        return APIError(
            503,
            "the service is at capacity; retry shortly",
            type="overloaded_error",
            code="overloaded",
            retry_after_s=1,
        )
    if isinstance(exc, TimeoutError):
        return APIError(
            504,
            "the request took longer than the gateway's deadline",
            type="timeout_error",
            code="timeout",
        )
    return APIError(
        500,
        f"internal error while serving the request (request id {request_id})",
        type="server_error",
        code="internal_error",
    )


def http_status(exc: BaseException) -> int:
    """The HTTP status a failure is answered (or recorded) with; 499 when the caller
    went away (cancellation), as nginx logs it."""
    if not isinstance(exc, Exception):
        return 499
    return from_exception(exc, "").status
