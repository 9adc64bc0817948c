"""How late the load generator's own event loop runs: a task that asks to wake every
``interval_s`` and records how much later it woke. Under hundreds of connections on the
cores the service also uses, a client's loop can be seconds behind, and every latency it
measures then includes that wait: this tells the two apart."""

from __future__ import annotations

import asyncio
import time


class LoopLag:
    """``async with LoopLag() as lag:`` around a load; ``lag.samples_s`` after it."""

    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self.samples_s: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            self.samples_s.append(max(0.0, time.perf_counter() - asked - self.interval_s))

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
