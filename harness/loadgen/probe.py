"""A probe beside a load: one request at a time, from a process of its own, timed to its
response. Under overload most are refused; their time is what a client that is not
itself swamped sees of a refusal (the load generator's own 256 connections on the same
cores delay what it measures). Bounded in count and time, and it stops by itself."""

from __future__ import annotations

import multiprocessing
import queue
import time
from typing import Any

import httpx


def _probe(
    url: str, duration_s: float, interval_s: float, model: str, api_key: str | None, out: Any
) -> None:
    rows: list[tuple[int, float]] = []
    body = {
        "model": model,
        "max_tokens": 1,
        "temperature": 0.7,
        "messages": [{"role": "user", "content": "What is 2 + 2?"}],
    }
    end = time.monotonic() + duration_s
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(base_url=url, timeout=30, headers=headers) as client:
        while time.monotonic() < end and len(rows) < 10_000:
            started = time.perf_counter()
            try:
                status = client.post("/v1/chat/completions", json=body).status_code
            except httpx.HTTPError:
                status = 0
            rows.append((status, time.perf_counter() - started))
            time.sleep(interval_s)
    out.put(rows)


class Probe:
    """``start()`` it when the load starts; ``result()`` waits for its end and gives the
    count and latency percentiles (ms) of its refusals (429) and of its other answers."""

    def __init__(
        self,
        url: str,
        duration_s: float,
        interval_s: float = 0.2,
        model: str = "auto",
        api_key: str | None = None,
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._queue = ctx.Queue()
        args = (url, duration_s, interval_s, model, api_key, self._queue)
        self._proc = ctx.Process(target=_probe, args=args, daemon=True)
        self._timeout = duration_s + 60

    def start(self) -> Probe:
        self._proc.start()
        return self

    def result(self) -> dict[str, Any]:
        from loadgen.report import percentiles_ms

        try:
            rows: list[tuple[int, float]] = self._queue.get(timeout=self._timeout)
        except queue.Empty:
            raise RuntimeError(
                f"the refusal probe sent no result (its exit code: {self._proc.exitcode})"
            ) from None
        finally:
            self._proc.join(timeout=10)
            if self._proc.is_alive():
                self._proc.kill()

        def block(latencies: list[float]) -> dict[str, Any]:
            return {"count": len(latencies), **percentiles_ms(latencies)}

        return {
            "refused": block([t for s, t in rows if s == 429]),
            "other": block([t for s, t in rows if s != 429]),
            "statuses": sorted({s for s, _ in rows}),
        }
