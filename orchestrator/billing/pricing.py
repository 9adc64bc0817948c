"""What a request cost: list prices per token, and replica time shared among requests.

A replica priced by the hour (GPU type × count) is charged by processor sharing: while
``n`` requests are in flight on it, each is charged ``dt / n`` of its busy time, so the
charges of all requests add up to exactly the time the replica was busy. ``BusyMeter``
keeps that account inside each replica; the gateway prices what the replicas report.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.config import MixserveConfig


class BusyMeter:
    """Processor-sharing account of one replica: ``start()`` returns a token, ``stop(token)``
    the seconds of busy time charged to that request."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.in_flight = 0
        self.shared = 0.0  # integral of 1 / in_flight over busy time
        self.last = clock()

    def _advance(self) -> None:
        now = self.clock()
        if self.in_flight:
            self.shared += (now - self.last) / self.in_flight
        self.last = now

    def start(self) -> float:
        self._advance()
        self.in_flight += 1
        return self.shared

    def stop(self, token: float) -> float:
        self._advance()
        self.in_flight = max(0, self.in_flight - 1)
        return self.shared - token


@dataclass(frozen=True)
class Rate:
    usd_per_mtok_in: float = 0.0
    usd_per_mtok_out: float = 0.0
    usd_per_hour: float = 0.0

    def of(self, tokens_in: int, tokens_out: int, busy_s: float) -> float:
        return (
            tokens_in * self.usd_per_mtok_in / 1e6
            + tokens_out * self.usd_per_mtok_out / 1e6
            + busy_s * self.usd_per_hour / 3600
        )


class CostModel:
    """Prices every part of a request from config: each specialist call (tokens at list
    price plus its share of replica time), the router's and the retriever's share."""

    def __init__(self, config: MixserveConfig) -> None:
        self.specialists = {
            s.name: Rate(
                s.price.usd_per_mtok_in, s.price.usd_per_mtok_out, s.price.usd_per_replica_hour
            )
            for s in config.specialists
        }
        self.router = Rate(usd_per_hour=config.router.usd_per_replica_hour)
        self.retrieval = Rate(usd_per_hour=config.retrieval.usd_per_replica_hour)

    def call(self, specialist: str, tokens_in: int, tokens_out: int, busy_s: float) -> float:
        """What one specialist call cost."""
        return self.specialists[specialist].of(tokens_in, tokens_out, busy_s)

    def request(
        self,
        calls: Iterable[Mapping[str, Any]],
        router_busy_s: float = 0.0,
        retrieval_busy_s: float = 0.0,
    ) -> dict[str, float]:
        """The ``usage.cost`` object: USD per part and in total (calls answered from the
        cache cost nothing: pass only the calls this request made)."""
        specialists = sum(
            self.call(
                c["specialist"],
                int(c["prompt_tokens"]),
                int(c["completion_tokens"]),
                float(c.get("busy_s", 0.0)),
            )
            for c in calls
        )
        router = self.router.of(0, 0, router_busy_s)
        retrieval = self.retrieval.of(0, 0, retrieval_busy_s)
        return {
            "total_usd": round(specialists + router + retrieval, 9),
            "specialists_usd": round(specialists, 9),
            "router_usd": round(router, 9),
            "retrieval_usd": round(retrieval, 9),
        }
