"""When an open-loop load sends: Poisson arrivals, seeded."""

from __future__ import annotations

import random


def poisson_times(rate_per_s: float, duration_s: float, rng: random.Random) -> list[float]:
    """Offsets (seconds from the start) of Poisson arrivals at ``rate_per_s`` over
    ``duration_s``: exponential gaps, so bursts come as they would from many users."""
    if rate_per_s <= 0 or duration_s <= 0:
        raise ValueError("an open-loop load needs a rate and a duration above 0")
    times, now = [], rng.expovariate(rate_per_s)
    while now < duration_s:
        times.append(now)
        now += rng.expovariate(rate_per_s)
    return times
