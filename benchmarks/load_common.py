"""What the load benchmarks share: the questions they send and a percentile."""

from __future__ import annotations

QUESTIONS = [
    "Write a Python function that reverses a list",
    "What is the capital of France?",
    "Explain what a hash table is.",
    "What is 17 times 23?",
]


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile by rank (NaN when there are no values)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")
