"""Admission control at the gateway: at most ``limit`` generation requests in the
pipeline of this replica at once; past it a request is refused at once (429 with
``Retry-After``) instead of joining queues it would wait out its deadline in.

The default limit is the fleet's capacity as this replica's share of it: every
specialist replica's running and queued slots (``max_ongoing_requests`` +
``max_queued_requests``), divided among the gateway replicas. A slot is released when
its request ends; one whose release was lost (a stream the client left before it began)
expires after the request deadline, so the count can never drift upward for good.

``Retry-After`` is how long the work in progress takes to turn over at the rate slots
have been coming back (the last ``RATE_WINDOW_S``), between 1 and ``MAX_RETRY_AFTER_S``
seconds: a client that honours it (the OpenAI SDKs do) comes back about when a slot is
likely free, instead of every second, which on a saturated machine only adds refusals.
"""

from __future__ import annotations

import collections
import itertools
import math
import time
from collections.abc import Callable

from orchestrator.config import MixserveConfig
from orchestrator.errors import APIError

RETRY_AFTER_S = 1  # the least, and what is said before any slot came back
MAX_RETRY_AFTER_S = 30
RATE_WINDOW_S = 30.0


def fleet_limit(config: MixserveConfig) -> int:
    """``gateway.admission_limit``, or this gateway replica's share of the fleet's slots."""
    if config.gateway.admission_limit is not None:
        return config.gateway.admission_limit
    engines = [members[0] for members in config.engine_deployments().values()]  # one per group
    slots = sum(s.replicas * (s.max_ongoing_requests + s.max_queued_requests)
                for s in engines)  # fmt: skip
    return max(1, math.ceil(slots / config.gateway.replicas))


class Admission:
    def __init__(
        self, limit: int, horizon_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.horizon_s = horizon_s  # the longest a request may legitimately be in flight
        self.clock = clock
        self._held: dict[int, float] = {}  # slot -> when it expires
        self._ids = itertools.count()
        self._released: collections.deque[float] = collections.deque(maxlen=4096)
        self.refused = 0

    @property
    def in_flight(self) -> int:
        return len(self._held)

    def admit(self) -> Callable[[], None]:
        """A slot, or a 429 when none is free; returns its (idempotent) release."""
        now = self.clock()
        if len(self._held) >= self.limit:
            for slot in [s for s, expiry in self._held.items() if expiry <= now]:
                del self._held[slot]
        if len(self._held) >= self.limit:
            self.refused += 1
            wait = self.retry_after_s(now)
            raise APIError(
                429,
                f"the service is at capacity ({self.limit} requests in progress here); "
                f"retry in {wait} s",
                type="overloaded_error",
                code="overloaded",
                retry_after_s=wait,
            )
        slot = next(self._ids)
        self._held[slot] = now + self.horizon_s

        def release() -> None:
            if self._held.pop(slot, None) is not None:
                self._released.append(self.clock())

        return release

    def retry_after_s(self, now: float) -> int:
        """Seconds until the requests in progress have likely turned over."""
        while self._released and self._released[0] < now - RATE_WINDOW_S:
            self._released.popleft()
        if not self._released:
            return RETRY_AFTER_S
        span = max(now - self._released[0], 1.0)
        rate = len(self._released) / span  # slots back per second, lately
        return max(RETRY_AFTER_S, min(MAX_RETRY_AFTER_S, math.ceil(len(self._held) / rate)))
