"""What a load's outcomes add up to, overall and per group (prompt set) and per
specialist (who answered): throughput, goodput within a latency SLO, time to first token
and latency percentiles, refusals and errors by kind."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from loadgen.client import Outcome

REFUSED = {429, 503}  # an answer of "not now", sent at once, with Retry-After


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    at = q * (len(ordered) - 1)
    low, high = math.floor(at), math.ceil(at)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def percentiles_ms(values: Sequence[float]) -> dict[str, float | None]:
    """p50, p95 and p99 of seconds, in ms (None for no values)."""

    def scaled(q: float) -> float | None:
        p = percentile(values, q)
        return None if p is None else round(p * 1000, 1)

    return {"p50": scaled(0.5), "p95": scaled(0.95), "p99": scaled(0.99)}


def _block(outcomes: Sequence[Outcome], wall_s: float, slo_s: float) -> dict[str, Any]:
    answered = [o for o in outcomes if o.answered]
    refused = [o for o in outcomes if o.status in REFUSED]
    good = [o for o in answered if o.latency_s <= slo_s]
    tokens = sum(o.output_tokens for o in answered)
    errors: dict[str, int] = defaultdict(int)
    refusals: dict[str, int] = defaultdict(int)  # by status and code: who refused, and why
    for o in outcomes:
        if o.status in REFUSED:
            refusals[f"{o.status} {o.error or '-'}"] += 1
        elif not o.answered:
            errors[o.error or str(o.status)] += 1
    return {
        "requests": len(outcomes),
        "answered": len(answered),
        "refused": len(refused),
        "refusals": dict(sorted(refusals.items())),
        "errors": dict(sorted(errors.items())),
        "count_5xx": sum(1 for o in outcomes if o.status >= 500 and o.status not in REFUSED),
        "client_timeouts": sum(1 for o in outcomes if o.error == "client_timeout"),
        "throughput_rps": round(len(answered) / wall_s, 3),
        "output_tokens_per_s": round(tokens / wall_s, 2),
        "goodput_rps": round(len(good) / wall_s, 3),
        "goodput_share": round(len(good) / len(outcomes), 4) if outcomes else None,
        "ttft_ms": percentiles_ms([o.ttft_s for o in answered if o.ttft_s is not None]),
        "latency_ms": percentiles_ms([o.latency_s for o in answered]),
        "refusal_ms": percentiles_ms([o.latency_s for o in refused]),
        # the engines' prefix-cache hits over the answered requests' prompt tokens
        "prefix_hit_rate": round(sum(o.cached_tokens for o in answered) / prompt, 4)
        if (prompt := sum(o.prompt_tokens for o in answered))
        else None,
        "moved": dict(sorted(Counter(o.moved for o in answered if o.moved).items())),
    }


def _by(outcomes: Iterable[Outcome], key: str) -> dict[str, list[Outcome]]:
    groups: dict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        groups[getattr(o, key) or "-"].append(o)
    return dict(sorted(groups.items()))


def summarize(outcomes: Sequence[Outcome], slo_s: float) -> dict[str, Any]:
    """The report of one load. Rates are over its wall time: from the start to the end
    of its last request."""
    wall = max((o.started + o.latency_s for o in outcomes), default=0.0) or 1e-9
    return {
        "wall_s": round(wall, 3),
        "slo_s": slo_s,
        "overall": _block(outcomes, wall, slo_s),
        "by_group": {g: _block(os, wall, slo_s) for g, os in _by(outcomes, "group").items()},
        "by_specialist": {
            s: _block(os, wall, slo_s) for s, os in _by(outcomes, "specialist").items()
        },
    }


def fault_summary(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """What a fault test reports: requests sent, succeeded, retried (by mixserve, after a
    lost replica, or by the client, after a lost connection) and failed, with the
    failures' error codes."""
    failed = [o for o in outcomes if not o.answered]
    return {
        "sent": len(outcomes),
        "succeeded": len(outcomes) - len(failed),
        "retried": sum(1 for o in outcomes if o.retried or o.client_retries),
        "retried_by_service": sum(1 for o in outcomes if o.retried),
        "resumed_mid_answer": sum(1 for o in outcomes if o.resumed),
        "retried_by_client": sum(1 for o in outcomes if o.client_retries),
        "failed": len(failed),
        "errors": dict(Counter(o.error or str(o.status) for o in failed)),
    }
