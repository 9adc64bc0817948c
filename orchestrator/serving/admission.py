"""Admission control at the gateway: at most ``limit`` generation requests in the
pipeline of this replica at once; past it a request is refused at once (429 with
``Retry-After``) instead of joining queues it would wait out its deadline in.

The default limit is the fleet's capacity as this replica's share of it: every
specialist replica's running and queued slots (``max_ongoing_requests`` +
``max_queued_requests``), divided among the gateway replicas. A slot is released when
its request ends; one whose release was lost (a stream the client left before it began)
expires after the request deadline, so the count can never drift upward for good.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable

from orchestrator.config import MixserveConfig
from orchestrator.errors import APIError

RETRY_AFTER_S = 1


def fleet_limit(config: MixserveConfig) -> int:
    """``gateway.admission_limit``, or this gateway replica's share of the fleet's slots."""
    if config.gateway.admission_limit is not None:
        return config.gateway.admission_limit
    engines = [members[0] for members in config.engine_groups().values()]  # one per group
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
            raise APIError(
                429,
                f"the service is at capacity ({self.limit} requests in progress here); "
                f"retry in {RETRY_AFTER_S} s",
                type="overloaded_error",
                code="overloaded",
                retry_after_s=RETRY_AFTER_S,
            )
        slot = next(self._ids)
        self._held[slot] = now + self.horizon_s

        def release() -> None:
            self._held.pop(slot, None)

        return release
