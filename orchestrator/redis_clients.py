"""The one place Redis clients are made, and the one reading of what Redis returns.

Every part of mixserve that talks to Redis (the gateway, the trace exporters, the CLI,
the embedded server's start-up check) gets its client here, so timeouts and pool sizes
are chosen once. Replies are bytes; ``text`` and ``texts`` turn them into ``str``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SYNC_TIMEOUT_S = 5.0


def sync_client(url: str, timeout_s: float = SYNC_TIMEOUT_S) -> Any:
    """A blocking client (the CLI, span exporters in their own thread)."""
    import redis

    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)


def async_client(url: str, max_connections: int = 64, timeout_s: float = 2.0) -> Any:
    """An asyncio client whose pool waits (up to ``timeout_s``) for a free connection
    instead of failing: redis-py's default pool raises past 100 concurrent commands,
    which a gateway with hundreds of requests in flight reaches."""
    import redis.asyncio as aioredis

    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
    )
    return aioredis.Redis(connection_pool=pool)


def text(value: bytes | str) -> str:
    """A Redis reply as text."""
    return value.decode() if isinstance(value, bytes) else value


def texts(raw: Mapping[Any, Any]) -> dict[str, str]:
    """A hash or stream entry as text keys and values."""
    return {text(k): text(v) for k, v in raw.items()}
