"""Chunks of a stream that come faster than an interval, sent as one.

Every chunk an engine replica streams costs the same on its way out whatever it holds:
the replica's serialization and gRPC send, the gateway's receive, its SSE event, the
HTTP write and the client's parse. An engine that writes a token every half millisecond
(a fast GPU engine) sends 64 of those for a 64-token answer. Here the first chunk goes
at once (time to first token is untouched); after that, what the engine writes within
``interval_s`` of the last send goes as one chunk, its text and log-probability entries
joined, its counts the latest. A token waits at most ``interval_s``; an engine slower
than that sends each chunk as it comes, as before. Ray Serve LLM does the same
(``stream_batching_interval_ms``, 50 ms by default); vLLM's ``stream_interval`` counts
tokens instead.

Chunks of different choices (``n`` > 1) and tool-call deltas are never joined with each
other: they go in order, one after the other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import replace

from specialists.engine import Chunk

_END = object()


def joined(first: Chunk, then: Chunk) -> Chunk | None:
    """``first`` followed by ``then`` as one chunk, None when they cannot be one (other
    choices, tool-call deltas, a chunk after the finish)."""
    if (
        first.index != then.index
        or first.tool_calls
        or then.tool_calls
        or first.finish_reason is not None
    ):
        return None
    logprobs = first.logprobs
    if then.logprobs is not None:
        logprobs = [*(first.logprobs or []), *then.logprobs]
    return replace(then, text=first.text + then.text, logprobs=logprobs)


def merge(chunks: list[Chunk]) -> list[Chunk]:
    """``chunks`` with each run that can be one joined."""
    out: list[Chunk] = []
    for chunk in chunks:
        one = joined(out[-1], chunk) if out else None
        if one is None:
            out.append(chunk)
        else:
            out[-1] = one
    return out


async def batched(source: AsyncIterator[Chunk], interval_s: float) -> AsyncGenerator[Chunk, None]:
    """``source``'s chunks, those within ``interval_s`` of the last send joined (0: as
    they come). Closing or cancelling this closes ``source`` (the engine aborts)."""
    if interval_s <= 0:
        try:
            async for chunk in source:
                yield chunk
        finally:
            closing = getattr(source, "aclose", None)
            if closing is not None:
                await closing()
        return
    queue: asyncio.Queue[object] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for chunk in source:
                queue.put_nowait(chunk)
        except Exception as exc:  # noqa: BLE001 - the engine's failure reaches the reader
            queue.put_nowait(exc)
        finally:
            queue.put_nowait(_END)

    task = asyncio.create_task(pump())
    last_sent = float("-inf")
    try:
        while True:
            waiting = [await queue.get()]
            wait = last_sent + interval_s - time.monotonic()
            if wait > 0 and waiting[0] is not _END:
                await asyncio.sleep(wait)  # the window's end: what came by then goes too
            while not queue.empty():
                waiting.append(queue.get_nowait())
            chunks = [c for c in waiting if isinstance(c, Chunk)]
            for chunk in merge(chunks):
                yield chunk
            last_sent = time.monotonic()
            failure = next((c for c in waiting if isinstance(c, BaseException)), None)
            if failure is not None:
                raise failure
            if any(c is _END for c in waiting):
                return
    finally:
        if not task.done():
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, RuntimeError):
                pass
