"""What this gateway replica holds of each engine's running slots, and the bounded queue
of requests waiting for one.

An engine's capacity is its replicas × ``max_ongoing_requests`` (the sequences it runs at
once); this replica's share is that divided among the gateway replicas. An autoscaled
engine counts its initial replicas (those it may add are not promised to be there). A request holds
a slot of the engine that answers it from when its answer starts until it ends, so
``free()`` is what the router's joint assignment may still hand out without queueing.

A request whose specialist refused it (Serve's queue full) and that has nowhere to spill
may ``wait`` for a slot: first come, first served, at most ``max_waiting`` per engine,
each until a slot is released here or ``POLL_S`` has passed (another gateway replica's
request may have ended), whichever is first, within its own deadline.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter, deque
from collections.abc import Callable

from orchestrator.config import MixserveConfig

POLL_S = 0.5  # a slot another gateway replica freed is seen within this


class QueueFull(Exception):
    """No room left in an engine's wait queue."""


def engine_capacity(config: MixserveConfig) -> dict[str, int]:
    """Engine deployment -> this gateway replica's share of its running slots."""
    shares = {}
    for engine, members in config.engine_deployments().items():
        spec = members[0]  # with autoscaling, ``replicas`` is the initial count
        slots = spec.replicas * spec.max_ongoing_requests
        shares[engine] = max(1, math.ceil(slots / config.gateway.replicas))
    return shares


class EngineSlots:
    def __init__(self, capacity: dict[str, int], max_waiting: int) -> None:
        self.capacity = dict(capacity)
        self.max_waiting = max_waiting
        self._held: Counter[str] = Counter()
        self._waiters: dict[str, deque[asyncio.Future[None]]] = {e: deque() for e in capacity}

    def free(self) -> dict[str, int]:
        return {e: max(0, c - self._held[e]) for e, c in self.capacity.items()}

    def held(self, engine: str) -> int:
        return self._held[engine]

    def waiting(self, engine: str) -> int:
        return len(self._waiters.get(engine, ()))

    def hold(self, engine: str) -> Callable[[], None]:
        """Hold one slot of ``engine``; returns its (idempotent) release, which wakes the
        first request waiting for that engine."""
        self._held[engine] += 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self._held[engine] -= 1
            queue = self._waiters.get(engine)
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    break

        return release

    async def wait(self, engine: str, timeout_s: float) -> None:
        """Until a slot of ``engine`` is released here, or ``min(timeout_s, POLL_S)``;
        ``QueueFull`` at once when ``max_waiting`` requests already wait for it."""
        queue = self._waiters.setdefault(engine, deque())
        if len(queue) >= self.max_waiting:
            raise QueueFull(f"{len(queue)} requests already wait for {engine}")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), max(0.0, min(timeout_s, POLL_S)))
        except TimeoutError:
            pass
        finally:
            if waiter in queue:
                queue.remove(waiter)
