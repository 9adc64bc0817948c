"""Reading the stored traces back (``GET /v1/traces/{request_id}``); see
``orchestrator.trace_export`` for how they are written."""

from __future__ import annotations

import json
from typing import Any

from orchestrator.errors import APIError
from orchestrator.trace_export import PREFIX


async def stored_trace(client: Any, tenant: str, request_id: str) -> dict[str, Any]:
    """The trace of the tenant's request, spans ordered by start; a 404 when there is
    none (unknown, expired, unsampled, not yet exported, or another tenant's)."""
    if client is None:
        raise APIError(404, "traces are not stored in this deployment", code="not_found")
    raw = await client.get(f"{PREFIX}req:{tenant}:{request_id}")
    spans: list[Any] = []
    if raw is not None:
        trace_id = raw.decode()
        spans = await client.lrange(f"{PREFIX}spans:{trace_id}", 0, -1)
    if not spans:
        raise APIError(
            404,
            f"no trace for request {request_id!r}: unknown, expired, or not exported yet "
            "(spans arrive within a second or so of the answer)",
            code="not_found",
        )
    records = sorted((json.loads(s) for s in spans), key=lambda r: (r["start"], r["end"]))
    return {"object": "trace", "request_id": request_id, "trace_id": trace_id, "spans": records}
