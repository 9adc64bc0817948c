"""Calls from the gateway to specialist deployments, under one request's deadline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

from orchestrator.errors import APIError, from_exception
from orchestrator.policies import CallFailed
from orchestrator.request_io import Answer

# Failures another specialist may not share: a cascade escalates past them, an
# ensemble drops the candidate. Anything else (bad input, the deadline) fails the request.
_RECOVERABLE = (500, 503)


class SpecialistCalls:
    """Every call of one request shares ``deadline`` (event-loop time): a specialist
    that stalls mid-answer ends the request with a timeout error instead of a hang."""

    def __init__(self, handles: Mapping[str, Any], request_id: str, deadline: float) -> None:
        self.handles = handles
        self.request_id = request_id
        self.deadline = deadline

    def _remaining(self) -> float:
        remaining = self.deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise TimeoutError("request deadline passed")
        return remaining

    async def stream(
        self, specialist: str, payload: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        """Start the specialist stream and wait for its first chunk, so that errors (bad
        input the engine found, overload) surface here, before any response is sent.
        Closing the returned iterator (a client that went away) cancels the generation."""
        gen = self.handles[specialist].options(stream=True).generate.remote(payload)
        try:
            first = await asyncio.wait_for(gen.__anext__(), self._remaining())
        except StopAsyncIteration:
            first = None
        except BaseException as exc:
            gen.cancel()
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise from_exception(exc, self.request_id) from None

        async def items() -> AsyncIterator[dict[str, Any]]:
            try:
                if first is None:
                    return
                yield first
                while True:
                    try:
                        item = await asyncio.wait_for(gen.__anext__(), self._remaining())
                    except StopAsyncIteration:
                        return
                    yield item
            finally:
                gen.cancel()

        return items()

    async def collect(self, specialist: str, payload: dict[str, Any]) -> dict[str, Any]:
        """One whole answer (the ``Caller`` of answer policies)."""
        answer = Answer()
        logprob = None
        try:
            async for item in await self.stream(specialist, payload):
                answer.absorb(item)
                logprob = item.get("cumulative_logprob", logprob)
        except Exception as exc:
            err = from_exception(exc, self.request_id)
            if err.status in _RECOVERABLE:
                raise CallFailed(f"{specialist}: {err.message}") from None
            if isinstance(exc, APIError):
                raise
            raise err from None
        return {**answer.as_dict(), "cumulative_logprob": logprob}
