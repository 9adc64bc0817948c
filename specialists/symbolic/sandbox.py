"""The worker process (``worker``) seen from the engine: one solve at a time, each under
the time limit; a solve that runs past it has its worker killed (by its pid) and replaced,
and is answered with a refusal."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path

from specialists.symbolic.limits import Limits
from specialists.symbolic.solve import Outcome

logger = logging.getLogger(__name__)
_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding `specialists`
START_TIMEOUT_S = 60.0  # importing SymPy in a fresh interpreter: about a second here


class Sandbox:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self.restarts = 0
        self.in_flight = False  # a question is with the worker, its reply not yet read

    async def start(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            return
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([_ROOT, *sys.path])}
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "specialists.symbolic.worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        assert self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), START_TIMEOUT_S)
        if not line:
            raise RuntimeError("the symbolic worker exited at start")

    async def ask(self, op: str, text: str) -> Outcome:
        """The worker's outcome for ``text`` (a question, or a model-written expression)."""
        request = json.dumps({"op": op, "text": text, "limits": asdict(self.limits)}) + "\n"
        async with self._lock:
            await self.start()
            proc = self._proc
            assert proc is not None and proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(request.encode())
            try:
                await proc.stdin.drain()
                self.in_flight = True
                line = await asyncio.wait_for(proc.stdout.readline(), self.limits.timeout_s)
            except TimeoutError:
                await self._kill()
                return Outcome(
                    "refused",
                    f"I cannot work on this: solving took longer than {self.limits.timeout_s:g} s.",
                )
            except (BrokenPipeError, ConnectionResetError):
                line = b""
            except asyncio.CancelledError:
                # the caller went away mid-solve: its reply would be read by the next
                # question, so this worker goes (a fresh one starts on the next ask)
                self.close()
                raise
            finally:
                self.in_flight = False
            if not line:  # the worker died (its memory cap): a fresh one next time
                await self._kill()
                return Outcome("refused", "I cannot work on this: it needs too much memory.")
        return Outcome(**json.loads(line))

    async def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        self.restarts += 1
        if proc.returncode is None:
            proc.kill()
        await proc.wait()

    def close(self) -> None:
        """Stop the worker (idempotent; safe without a running loop)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.kill()

    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid
