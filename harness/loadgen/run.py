"""Run a load: closed-loop clients (each sends its next request when its last is done)
or open-loop Poisson arrivals (sent on schedule, however slow the answers). Both are
bounded in time and stop by themselves; requests still open at the end get until their
own timeout, then count as the client giving up."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlparse

import httpx

from loadgen.arrivals import poisson_times
from loadgen.client import Outcome, stream_chat
from loadgen.mix import ContextMix, QueryMix

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MAX_OPEN = 4096  # requests in flight at once in an open-loop load, at the most


@dataclass(frozen=True)
class LoadSpec:
    url: str
    mode: Literal["closed", "open"] = "closed"
    clients: int = 16  # closed loop
    rate_per_s: float = 0.0  # open loop
    duration_s: float = 30.0
    model: str = "auto"
    max_tokens: int = 64
    temperature: float = 0.7  # above 0: the response cache stays out of the measurement
    timeout_s: float = 60.0
    seed: int = 0
    api_key: str | None = None
    honor_retry_after: bool = True  # a closed-loop client waits as a refusal asks, as SDKs do
    extra: dict[str, Any] | None = None  # more request fields (e.g. a peer's stop strings)
    # times a request is sent again, as the OpenAI SDKs do (their max_retries, default 2):
    # after a lost connection, or an answer of 408, 409, 429 or 5xx before any text,
    # waiting as Retry-After asks (else 0.5 s, doubled); 0: never
    client_retries: int = 0

    def check(self, allow_remote: bool = False) -> None:
        host = urlparse(self.url).hostname or ""
        if not allow_remote and host not in LOOPBACK and not host.startswith("127."):
            raise ValueError(f"{self.url} is not on this machine (pass allow_remote to load it)")
        if self.duration_s <= 0 or self.timeout_s <= 0 or self.max_tokens < 1:
            raise ValueError("duration, timeout and max_tokens must be above 0")
        if self.mode == "closed" and self.clients < 1:
            raise ValueError("a closed-loop load needs at least one client")
        if self.mode == "open" and self.rate_per_s <= 0:
            raise ValueError("an open-loop load needs a rate above 0")


RETRIED_STATUSES = {408, 409, 429}  # and every 5xx: what the OpenAI SDKs retry


def retryable(outcome: Outcome) -> bool:
    """What an OpenAI SDK sends again: a connection that failed or was cut before any
    text came, or a status it retries; never a client timeout or an answer under way."""
    if outcome.status == 0:
        return outcome.error.startswith("client_error")
    if outcome.status == 200:
        return outcome.error == "truncated" and outcome.ttft_s is None
    return outcome.status in RETRIED_STATUSES or outcome.status >= 500


async def run_load(
    spec: LoadSpec,
    mix: QueryMix | ContextMix,
    allow_remote: bool = False,
    observer: Callable[[Outcome], None] | None = None,
    stop: threading.Event | None = None,
) -> list[Outcome]:
    """Every request's outcome, in the order they were sent; ``observer`` sees each as
    it ends (a fault test acts once the load is under way). ``stop``, once set, ends the
    load before ``duration_s``: no request is sent after it, and those under way finish
    (a fault test stops once the fault has been dealt with)."""
    spec.check(allow_remote)
    rng = random.Random(spec.seed)
    headers = {"authorization": f"Bearer {spec.api_key}"} if spec.api_key else {}
    limits = httpx.Limits(max_connections=max(spec.clients, 64) if spec.mode == "closed"
                          else MAX_OPEN, max_keepalive_connections=256)  # fmt: skip
    start = time.perf_counter()
    outcomes: list[Outcome] = []

    def going() -> bool:
        return time.perf_counter() - start < spec.duration_s and not (stop and stop.is_set())

    async with httpx.AsyncClient(base_url=spec.url, headers=headers, limits=limits) as client:

        async def one() -> Outcome:
            prompt = mix.sample(rng)
            sent = time.perf_counter() - start
            for attempt in range(spec.client_retries + 1):
                outcome = await stream_chat(
                    client,
                    prompt,
                    model=spec.model,
                    max_tokens=spec.max_tokens,
                    temperature=spec.temperature,
                    timeout_s=spec.timeout_s,
                    started=sent,
                    extra=spec.extra,
                )
                outcome.client_retries = attempt
                if attempt == spec.client_retries or not retryable(outcome):
                    break
                await asyncio.sleep(min(8.0, outcome.retry_after_s or 0.5 * 2**attempt))
            outcomes.append(outcome)
            if observer is not None:
                observer(outcome)
            return outcome

        if spec.mode == "closed":

            async def worker() -> None:
                while going():
                    outcome = await one()
                    if spec.honor_retry_after and outcome.retry_after_s:
                        left = spec.duration_s - (time.perf_counter() - start)
                        await asyncio.sleep(max(0.0, min(outcome.retry_after_s, left)))

            await asyncio.gather(*(worker() for _ in range(spec.clients)))
        else:
            tasks: set[asyncio.Task[Outcome]] = set()
            for offset in poisson_times(spec.rate_per_s, spec.duration_s, rng):
                await asyncio.sleep(max(0.0, offset - (time.perf_counter() - start)))
                if not going():
                    break
                if len(tasks) >= MAX_OPEN:
                    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                task: asyncio.Task[Outcome] = asyncio.create_task(one())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks)
    return sorted(outcomes, key=lambda o: o.started)
