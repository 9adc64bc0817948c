"""Pick λ (quality − λ · relative cost) so a target share of queries goes to the priciest model."""

from __future__ import annotations

import numpy as np


def strong_share(predicted: np.ndarray, relative_costs: np.ndarray, tradeoff: float) -> float:
    strong = int(np.argmax(relative_costs))
    choice = np.argmax(predicted - tradeoff * relative_costs, axis=1)
    return float(np.mean(choice == strong))


def calibrate_tradeoff(
    predicted: np.ndarray, relative_costs: np.ndarray, target_share: float, steps: int = 60
) -> dict[str, float]:
    """Smallest λ whose share of calls to the priciest model is at most ``target_share``.

    The share can only fall as λ grows (the priciest model loses the most utility), so a
    bisection finds it; the achieved share may sit below the target when many queries
    tie.
    """
    if not 0.0 <= target_share <= 1.0:
        raise ValueError("target share must be in [0, 1]")
    low, high = 0.0, 1.0
    if strong_share(predicted, relative_costs, low) <= target_share:
        high = 0.0
    else:
        while strong_share(predicted, relative_costs, high) > target_share and high < 1e9:
            low, high = high, high * 2
        for _ in range(steps):
            middle = (low + high) / 2
            if strong_share(predicted, relative_costs, middle) > target_share:
                low = middle
            else:
                high = middle
    return {
        "quality_cost_tradeoff": high,
        "target_share": target_share,
        "share": strong_share(predicted, relative_costs, high),
        "queries": len(predicted),
    }
