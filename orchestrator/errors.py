"""Error mapping: every failure leaves the gateway as an OpenAI-style error body.

Bad input is a 4xx naming the problem; overload is 429/503 with ``Retry-After``; anything
unexpected is a 500 whose body carries only the request id, never a stack trace.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from specialists.errors import (
    ContextLengthError,
    EngineOverloadedError,
    EngineRequestError,
    EngineUnhealthyError,
)


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


_MEMBER = re.compile(r"^[A-Z]|[^A-Za-z0-9_]")


def _param_from_loc(loc: Sequence[object]) -> str | None:
    """The parameter a validation error's location names, as a client writes it: without
    FastAPI's ``body`` and the union members pydantic tries (a class name, a
    ``literal[...]``, a tag with a space in it), which are no part of the request."""
    parts = [p for p in loc if p != "body" and not (isinstance(p, str) and _MEMBER.search(p))]
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


class ReplicaLost(Exception):
    """A call's replica was lost and the call could not go on elsewhere (retries spent,
    or the answer had begun and resumption is off): ``tokens`` of it had been sent."""

    def __init__(self, specialist: str, tokens: int, attempts: int) -> None:
        super().__init__(f"{specialist}: replica lost after {tokens} tokens, {attempts} tries")
        self.specialist = specialist
        self.tokens = tokens
        self.attempts = attempts


def lost_replica(exc: BaseException) -> bool:
    """Whether ``exc`` says the replica (or node, or engine) answering a call is gone, so
    the call may be sent again elsewhere: Ray's actor and worker deaths (also wrapped in a
    task error, or a Serve error caused by one), the gRPC channel to a dead replica, or
    the engine inside a live replica reported dead."""
    from ray import exceptions as rx

    lost = (rx.RayActorError, rx.WorkerCrashedError, rx.NodeDiedError, rx.ObjectLostError)
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, (*lost, EngineUnhealthyError)):
            return True
        code = getattr(cur, "code", None)  # grpc.aio.AioRpcError, without importing grpc
        if callable(code) and type(cur).__name__ == "AioRpcError":
            return getattr(code(), "name", "") == "UNAVAILABLE"
        cur = getattr(cur, "cause", None) or cur.__cause__
    return False


def from_exception(exc: BaseException, request_id: str) -> APIError:
    """Map an exception raised anywhere behind the gateway (also across Ray) to an error."""
    cause = getattr(exc, "cause", None) or exc
    if isinstance(exc, APIError):
        return exc
    if isinstance(cause, ContextLengthError):
        return APIError(400, str(cause), param="messages", code="context_length_exceeded")
    if isinstance(cause, EngineRequestError):  # the engine's own validation (vLLM's)
        return APIError(cause.status, str(cause), param=cause.param, code="invalid_value")
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
    if isinstance(exc, ReplicaLost) or lost_replica(exc):
        cut = f" after {exc.tokens} tokens of its answer" if isinstance(exc, ReplicaLost) else ""
        return APIError(
            503,
            f"the specialist's replica was lost{cut} and no other could take the request "
            f"over; retry it (request id {request_id})",
            type="server_error",
            code="replica_lost",
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
