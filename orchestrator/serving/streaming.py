"""The server-sent events body of a streamed chat completion.

The first chunk carries the role and the request's routing, sources and policy calls;
then one chunk per piece of text; then the finish chunk with ``usage`` (its cost
included), and, when the client asked for ``stream_options.include_usage``, OpenAI's
separate usage chunk. An error after the headers are sent is reported in-band, as an
error event before ``[DONE]``. A client that goes away mid-answer closes the stream,
which cancels the generation; the request is settled either way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

from orchestrator.errors import from_exception
from orchestrator.serving import protocol as fmt
from orchestrator.serving.plan import Answer, Plan


class Finisher(Protocol):
    """What the stream needs from the gateway to finish a request."""

    def first_token(self, plan: Plan) -> None: ...

    def settle(self, plan: Plan, answer: Answer) -> dict[str, Any]: ...

    async def close(self, plan: Plan, usage: dict[str, Any] | None, outcome: str) -> None: ...

    async def remember(self, plan: Plan, answer: Answer) -> None: ...


class Shape(Protocol):
    """How a streamed answer's chunks look."""

    prefix: str  # of the response id

    def opening(self) -> dict[str, Any]: ...

    def chunk(
        self,
        cid: str,
        model: str,
        created: int,
        delta: dict[str, Any],
        finish_reason: str | None = None,
        extra: dict[str, Any] | None = None,
        logprobs: list[dict[str, Any]] | None = None,
        index: int = 0,
    ) -> dict[str, Any] | list[dict[str, Any]]:
        """One event body, or several (the Responses API's)."""


class ChatShape:
    """Chat completion chunks (``delta``s); the legacy completions API has its own
    (``orchestrator.serving.completions.TextShape``)."""

    prefix = "chatcmpl"
    chunk = staticmethod(fmt.chunk)

    def opening(self) -> dict[str, Any]:
        return {"role": "assistant", "content": ""}


def _sse(body: dict[str, Any] | list[dict[str, Any]]) -> bytes:
    return b"".join(fmt.sse(b) for b in (body if isinstance(body, list) else [body]))


async def sse_body(
    gateway: Finisher,
    plan: Plan,
    items: AsyncIterator[dict[str, Any]],
    include_usage: bool,
    per_token: bool = False,
    shape: Shape | None = None,
) -> AsyncIterator[bytes]:
    """``per_token``: the client asked for ``logprobs``; each chunk carries its tokens'."""
    shape = shape if shape is not None else ChatShape()
    created = int(time.time())
    cid = f"{shape.prefix}-{plan.request_id}"
    model = plan.specialist
    trace = plan.trace
    try:
        opening = shape.opening()
        yield _sse(shape.chunk(cid, model, created, opening, extra={"mixserve": plan.meta}))
        answer, done = Answer(), False
        try:
            async for item in items:
                text = answer.absorb(item)
                entries = item.get("logprobs") if per_token else None
                calls = item.get("tool_calls")
                if text or entries or calls:
                    gateway.first_token(plan)
                    delta: dict[str, Any] = {"content": text}
                    if calls:
                        delta["tool_calls"] = calls
                    index = int(item.get("index") or 0)
                    yield _sse(
                        shape.chunk(cid, model, created, delta, logprobs=entries, index=index)
                    )
            done = True
        except Exception as exc:  # noqa: BLE001 - headers are sent: report in-band
            err = from_exception(exc, plan.request_id)
            await gateway.close(plan, None, f"error {err.status}")
            if trace is not None:
                trace.fail(err)
            yield fmt.sse(err.body())
            yield fmt.sse("[DONE]")
            return
        finally:  # a client that went away closed the stream mid-answer
            if not done and not plan.closed:
                await asyncio.shield(gateway.close(plan, None, "disconnected"))
        usage = gateway.settle(plan, answer)
        await gateway.close(plan, usage, "ok")
        extra: dict[str, Any] = {"usage": usage}
        if plan.retries:  # the first chunk went out before a replica was lost
            extra["mixserve"] = {"retries": plan.retries}
        for index, other in sorted(answer.others.items()):  # n: each choice's own finish
            yield _sse(shape.chunk(cid, model, created, {}, other.finish_reason, index=index))
        yield _sse(shape.chunk(cid, model, created, {}, answer.finish_reason, extra=extra))
        if include_usage:  # OpenAI's separate usage chunk
            final = shape.chunk(cid, model, created, {}, extra={"usage": usage})
            if isinstance(final, dict):
                final["choices"] = []
                yield fmt.sse(final)
        yield fmt.sse("[DONE]")
        await gateway.remember(plan, answer)
    except BaseException as exc:
        if trace is not None:
            trace.fail(exc)
        raise
    finally:
        if trace is not None:
            trace.end(200)
