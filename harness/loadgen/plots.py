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
    return _save(fig, path)


def plot_balance(rounds: dict[str, list[dict[str, Any]]], path: Path, title: str) -> Path:
    """The balance bench's rounds (``mixserve bench skew``): a panel per part present —
    p99 latency of the mixes, p99 TTFT and prefix-cache hits per replica router, and
    the autoscaling step's replicas over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mixes: list[str] = [n for n in ("uniform", "skew", "skew_off") if n in rounds]
    routers = [n for n in rounds if n.startswith("replicas_")]
    steps: list[str] = [n for n in ("autoscaling_on", "autoscaling_off") if n in rounds]
    panels = [
        p for p, present in (("mix", mixes), ("routers", routers), ("step", steps)) if present
    ]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(5.5 * max(1, len(panels)), 4))
    axes = list(axes) if len(panels) > 1 else [axes]
    for ax, panel in zip(axes, panels, strict=False):
        if panel == "mix":
            for i, name in enumerate(mixes):
                values = [(r["overall"]["latency_ms"]["p99"] or 0) / 1000 for r in rounds[name]]
                ax.bar([i + 0.8 * k / len(values) - 0.3 for k in range(len(values))], values,
                       width=0.7 / len(values), label=name)  # fmt: skip
            ax.set_xticks(range(len(mixes)), mixes)
            ax.set_ylabel("p99 latency per round (s)")
            ax.set_title("uniform vs skewed mix, balancing on/off")
        elif panel == "routers":
            names = [n.removeprefix("replicas_") for n in routers]
            ttft = [_median_of(rounds[n], lambda o: o["ttft_ms"]["p99"]) / 1000 for n in routers]
            hits = [_median_of(rounds[n], lambda o: o["prefix_hit_rate"]) for n in routers]
            ax.bar(range(len(names)), ttft, color="tab:blue", label="TTFT p99 (s)")
            ax.set_xticks(range(len(names)), names, fontsize=8)
            ax.set_ylabel("TTFT p99, median of rounds (s)")
            twin = ax.twinx()
            twin.plot(range(len(names)), hits, "o-", color="tab:orange", label="prefix hit rate")
            twin.set_ylim(0, 1)
            twin.set_ylabel("prefix-cache hit rate")
            ax.set_title("two replicas: request routers")
        else:
            for step in steps:
                seen = rounds[step][0].get("replicas_seen") or []
                p99 = rounds[step][0]["overall"]["latency_ms"]["p99"]
                label = f"{step} (p99 {p99} ms)"
                ax.step([t for t, _ in seen], [n for _, n in seen], where="post", label=label)
            ax.set_xlabel("seconds into the step")
            ax.set_ylabel("running replicas")
            ax.set_ylim(0, 3)
            ax.set_yticks([0, 1, 2])
            ax.set_title("a step in load")
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def _median_of(reports: Sequence[dict[str, Any]], metric: Any) -> float:
    values = sorted(float(v) for r in reports if (v := metric(r["overall"])) is not None)
    if not values:
        return 0.0
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def _save(fig: Any, path: Path) -> Path:
    """Write the figure as a PNG atomically (a temporary file renamed over ``path``)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path
