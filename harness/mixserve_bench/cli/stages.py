"""Where a streamed request's time to first token goes, stage by stage, from its trace:
what the client saw, the gateway before it called the engine, the way to the engine
replica (handle routing and its queue), the engine's own time to its first chunk
(tokenizing, vLLM's queue, prefill), the first chunk's way back, the wait from that
chunk to the first one with text (text held back while it could begin a stop string),
and what lies in front of the gateway (HAProxy or Serve's proxy, HTTP, the load
generator's own scheduling)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx

TTFT = "gen_ai.response.time_to_first_chunk"
ENGINE_SPAN = "mixserve.specialist.generate"
STAGES = (
    "client_ttft",
    "in_front_of_gateway",
    "gateway_before_call",
    "to_engine",
    "engine_ttft",
    "back_to_gateway",
    "first_chunk_to_text",
)


def stages_of(spans: Sequence[dict[str, Any]], client_ttft_s: float) -> dict[str, float] | None:
    """The stages (seconds) of one single-call request's trace; None when its spans are
    not all there (not exported yet, or a request that made no engine call)."""
    root = next((s for s in spans if s.get("parent_id") is None), None)
    call = next((s for s in spans if "mixserve.call.index" in s["attributes"]), None)
    engine = next((s for s in spans if s["name"] == ENGINE_SPAN), None)
    if root is None or call is None or engine is None:
        return None
    gateway_ttft = root["attributes"].get(TTFT)
    call_ttft = call["attributes"].get(TTFT)
    engine_ttft = engine["attributes"].get(TTFT)
    to_engine = engine["attributes"].get("mixserve.queue_wait_s")
    if None in (gateway_ttft, call_ttft, engine_ttft, to_engine):
        return None
    before_call = call["start"] - root["start"]
    return {
        "client_ttft": client_ttft_s,
        "in_front_of_gateway": client_ttft_s - gateway_ttft,
        "gateway_before_call": before_call,
        "to_engine": to_engine,
        "engine_ttft": engine_ttft,
        "back_to_gateway": call_ttft - to_engine - engine_ttft,
        "first_chunk_to_text": gateway_ttft - before_call - call_ttft,
    }


async def breakdown(url: str, outcomes: Sequence[Any], count: int = 40) -> dict[str, Any]:
    """p50, p95 and p99 (ms) of each stage over up to ``count`` answered requests, spread
    over the load; ``samples`` says how many traces were complete."""
    from loadgen.report import percentiles_ms

    answered = [o for o in outcomes if o.answered and o.request_id and o.ttft_s is not None]
    step = max(1, len(answered) // count)
    picked = answered[::step][:count]
    rows: list[dict[str, float]] = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for o in picked:
            for _ in range(20):  # spans reach the store within the export delay
                resp = await client.get(f"/v1/traces/{o.request_id}")
                row = stages_of(resp.json()["spans"], o.ttft_s) if resp.status_code == 200 else None
                if row is not None:
                    rows.append(row)
                    break
                await asyncio.sleep(0.25)

    return {
        "samples": len(rows),
        **{name: percentiles_ms([r[name] for r in rows]) for name in STAGES},
    }
