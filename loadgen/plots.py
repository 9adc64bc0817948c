"""PNG plots of a sweep over offered load: latency (p50, p99) and goodput against it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def plot_sweep(points: Sequence[tuple[float, dict[str, Any]]], path: Path, title: str) -> Path:
    """``points`` are (offered load, report) pairs; writes one PNG of two panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loads = [load for load, _ in points]
    overall = [report["overall"] for _, report in points]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for q, style in (("p50", "o-"), ("p99", "s--")):
        left.plot(loads, [o["latency_ms"][q] or 0 for o in overall], style, label=f"latency {q}")
        left.plot(loads, [o["ttft_ms"][q] or 0 for o in overall], style, alpha=0.5,
                  label=f"TTFT {q}")  # fmt: skip
    left.set_xlabel("offered load")
    left.set_ylabel("ms")
    left.legend()
    right.plot(loads, [o["goodput_rps"] for o in overall], "o-", label="goodput (within SLO)")
    right.plot(loads, [o["throughput_rps"] for o in overall], "s--", label="answered")
    right.plot(loads, [o["refused"] / points[i][1]["wall_s"] for i, o in enumerate(overall)],
               "x:", label="refused")  # fmt: skip
    right.set_xlabel("offered load")
    right.set_ylabel("requests/s")
    right.legend()
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path
