"""Load under a fault: the load harness runs in a thread while the test breaks something
(kills a replica, stops a node), then reports what the clients saw as the issue asks:
requests sent, succeeded, retried, failed."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from loadgen.client import Outcome
from loadgen.mix import QueryMix
from loadgen.report import fault_summary
from loadgen.run import LoadSpec, run_load

WORDS = 40  # every question's last line: the fake engine's answer is "[specialist]" + these


def long_questions(topic: str, n: int = 8) -> QueryMix:
    """Questions whose fake answers are all 1 + WORDS tokens long, so a whole answer is
    told from one cut short or doubled by its token count alone."""
    queries = [
        f"{topic} " + " ".join(f"w{i}x{j}" for j in range(WORDS - len(topic.split())))
        for i in range(n)
    ]
    return QueryMix({"faults": queries})


class Load:
    """``spec`` run in a background thread; ``wait_answered(n)`` blocks until ``n``
    requests have ended (the load is under way), ``outcomes()`` until it is over.
    ``finish_when`` ends it once the fault has been dealt with instead of at the end of
    ``spec.duration_s``, which stays the longest it runs."""

    def __init__(self, spec: LoadSpec, mix: QueryMix) -> None:
        self.spec = spec
        self.mix = mix
        self.ended: list[Outcome] = []
        self._cond = threading.Condition()
        self._result: list[Outcome] | None = None
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self.stopped_at: float | None = None  # monotonic time finish_when stopped it
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _seen(self, outcome: Outcome) -> None:
        with self._cond:
            self.ended.append(outcome)
            self._cond.notify_all()

    def _run(self) -> None:
        try:
            load = run_load(self.spec, self.mix, observer=self._seen, stop=self._stop)
            self._result = asyncio.run(load)
        except BaseException as exc:  # noqa: BLE001 - re-raised in outcomes()
            self._error = exc
        with self._cond:
            self._cond.notify_all()

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self._thread.join(self.spec.duration_s + self.spec.timeout_s + 30)

    def wait_answered(self, n: int, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while len(self.ended) < n:
                if self._error is not None or self._result is not None:
                    raise RuntimeError(f"the load ended after {len(self.ended)} requests")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"only {len(self.ended)} of {n} requests ended")
                self._cond.wait(left)

    def finish_when(
        self, what: str, check: Callable[[], Any], then: int, every_s: float = 0.5
    ) -> None:
        """Poll ``check`` while the load runs; once it is true, let ``then`` more
        requests end and stop the load. If the load reaches its duration first, it ends
        there as it would have anyway (what the test asserts afterwards decides)."""
        while not self._over():
            if check():
                with self._cond:
                    seen = len(self.ended)
                try:
                    self.wait_answered(seen + then, timeout_s=self.spec.duration_s)
                except (RuntimeError, TimeoutError):
                    pass  # the load ended by itself first
                break
            time.sleep(every_s)
        else:
            print(f"load ended before {what}")
        self.stopped_at = time.monotonic()
        self._stop.set()

    def finish_after(self, then: int) -> None:
        """Let ``then`` more requests end, then stop the load."""
        self.finish_when("now", lambda: True, then)

    def _over(self) -> bool:
        with self._cond:
            return self._error is not None or self._result is not None

    def outcomes(self) -> list[Outcome]:
        self._thread.join(self.spec.duration_s + self.spec.timeout_s + 30)
        if self._error is not None:
            raise self._error
        assert self._result is not None, "the load did not end"
        return self._result


def report(name: str, outcomes: list[Outcome]) -> dict[str, Any]:
    """The fault report, printed as one JSON line (pytest -s shows it, CI logs keep it)."""
    summary = {"fault": name, **fault_summary(outcomes)}
    print(json.dumps(summary))
    return summary


def replica_pids(deployment: str) -> dict[str, int]:
    """Actor id -> pid of every live replica of ``deployment`` (any application)."""
    from ray.util.state import list_actors

    actors = list_actors(
        filters=[("state", "=", "ALIVE")], limit=10_000, raise_on_missing_output=False
    )
    return {a.actor_id: a.pid for a in actors if a.class_name.endswith(f":{deployment}") and a.pid}


def wait_for(what: str, check: Callable[[], Any], timeout_s: float, every_s: float = 1.0) -> Any:
    """Poll ``check`` until it returns something true; fail naming ``what`` at the end."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(every_s)
