"""What the gateway asks the other deployments about themselves: readiness and counters.
Each probe has a deadline; a busy or dead replica answers "not ready" or no stats."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

PROBE_TIMEOUT_S = 10


async def readiness(handles: Mapping[str, Any]) -> dict[str, str]:
    """Each component's answer to ``ready()``: "ready" or "not ready: <error>"."""

    async def probe(handle: Any) -> str:
        try:
            await asyncio.wait_for(handle.ready.remote(), PROBE_TIMEOUT_S)
            return "ready"
        except Exception as exc:  # noqa: BLE001
            return f"not ready: {type(exc).__name__}"

    results = await asyncio.gather(*(probe(h) for h in handles.values()))
    return dict(zip(handles, results, strict=True))


async def replica_stats(handles: Mapping[str, Any]) -> dict[str, dict[str, Any] | None]:
    """The counters of one replica of each specialist (None when it does not answer)."""

    async def stats(handle: Any) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = await asyncio.wait_for(
                handle.get_stats.remote(), PROBE_TIMEOUT_S
            )
            return result
        except Exception:  # noqa: BLE001 - a busy or dead replica reports no stats
            return None

    results = await asyncio.gather(*(stats(h) for h in handles.values()))
    return dict(zip(handles, results, strict=True))
