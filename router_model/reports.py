"""What ``mixserve router eval`` reports beside accuracy, kept here so it is tested
without the CLI: price tables, what each query would cost each model, the latency of
one routing decision, and the per-query predictions file."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

CHARS_PER_TOKEN = 4.0  # a query's input tokens, estimated from its characters


def read_prices(file: Path) -> dict[str, dict[str, float]]:
    """A ``models.json`` price table: model -> USD per million input and output tokens.
    Raises ``ValueError`` naming the file when it is not one."""
    try:
        raw = json.loads(file.read_text())
        return {
            m: {k: float(p[k]) for k in ("usd_per_mtok_in", "usd_per_mtok_out")}
            for m, p in raw.items()
        }
    except OSError as exc:
        raise ValueError(f"{file}: {exc.strerror or exc}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{file}: not a price table ({exc})") from None


def query_costs(
    prices: Sequence[tuple[float, float]], queries: Sequence[str], completion_tokens: int
) -> np.ndarray:
    """USD per query (rows) and model (columns): the query's estimated input tokens at
    each model's input price, a nominal completion at its output price."""
    tokens_in = np.array([len(q) / CHARS_PER_TOKEN for q in queries])[:, None]
    price_in, price_out = np.array(prices, dtype=float).reshape(-1, 2).T
    return np.asarray((tokens_in * price_in + completion_tokens * price_out) / 1e6)


def routing_latency(
    decide: Callable[[str], Any], queries: Sequence[str], samples: int, warmup: int = 5
) -> dict[str, float]:
    """p50 and p99 milliseconds of ``decide(query)`` (one routing decision) over up to
    ``samples`` queries drawn without replacement (seeded), after a few warm-up calls."""
    rng = np.random.default_rng(0)
    picks = rng.choice(len(queries), size=min(samples, len(queries)), replace=False)
    for i in picks[:warmup]:
        decide(queries[i])
    times = []
    for i in picks:
        started = time.perf_counter()
        decide(queries[i])
        times.append((time.perf_counter() - started) * 1000)
    return {"p50": float(np.percentile(times, 50)), "p99": float(np.percentile(times, 99))}


def write_predictions(
    path: Path,
    queries: Sequence[str],
    predicted: np.ndarray,
    choice: np.ndarray,
    models: Sequence[str],
) -> None:
    """One JSON line per query (its choice and every model's predicted quality), written
    atomically: a temporary file beside ``path``, renamed over it."""
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            for q, row, c in zip(queries, predicted, choice, strict=True):
                line = {
                    "query": q,
                    "choice": models[c],
                    "predicted": dict(zip(models, map(float, row), strict=True)),
                }
                handle.write(json.dumps(line, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
