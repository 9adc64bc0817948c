"""Variants measured side by side: rounds alternate between them (A B A B ...), so the
drift of a noisy machine hits each alike, and ratios are taken within one run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

Round = Callable[[], Awaitable[dict[str, Any]]]  # one measurement of a variant: a report


async def alternate(variants: Mapping[str, Round], rounds: int) -> dict[str, list[dict[str, Any]]]:
    """Each variant's reports, ``rounds`` of them, measured in alternation."""
    if rounds < 1 or not variants:
        raise ValueError("alternate needs variants and at least one round")
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, measure in variants.items():
            results[name].append(await measure())
    return results


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def ratio(results: dict[str, list[dict[str, Any]]], a: str, b: str, metric: str) -> float:
    """Median over rounds of ``a``'s overall ``metric`` over ``b``'s in the same round."""
    pairs = zip(results[a], results[b], strict=True)
    return median([x["overall"][metric] / y["overall"][metric] for x, y in pairs])
