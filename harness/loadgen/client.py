"""One streamed chat completion, timed: to its first content token, and to its end."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from loadgen.mix import Prompt


@dataclass
class Outcome:
    group: str
    status: int  # HTTP status; 0 when the client gave up (timeout) or could not connect
    started: float  # seconds from the load's start
    latency_s: float
    ttft_s: float | None = None
    output_tokens: int = 0
    specialist: str = ""
    error: str = ""  # the error code of a refusal or failure (in the body or in-band)
    retry_after_s: float = 0.0  # what a refusal asked the client to wait
    request_id: str = ""  # mixserve's (its trace), from the first chunk; "" from a peer
    prompt_tokens: int = 0
    cached_tokens: int = 0  # usage.prompt_tokens_details.cached_tokens: prefix-cache hits
    moved: str = ""  # mixserve's balancing: "reassigned", "spilled" or "waited" ("" if none)
    retried: int = 0  # calls mixserve sent again after losing a replica (final chunk)
    resumed: int = 0  # of those, answers continued mid-stream on another replica
    client_retries: int = 0  # times this client sent the request again (connection lost)
    done: bool = False  # the stream ended with [DONE] (else it was cut short)
    sent_at: float = 0.0  # Unix time it was sent (to set beside the server's timestamps)

    @property
    def answered(self) -> bool:
        return self.status == 200 and not self.error

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def stream_chat(
    client: httpx.AsyncClient,
    prompt: Prompt,
    *,
    model: str,
    max_tokens: int,
    temperature: float,
    timeout_s: float,
    started: float,
    clock: Any = time.perf_counter,
    extra: dict[str, Any] | None = None,
) -> Outcome:
    body: dict[str, Any] = {
        **(extra or {}),
        "model": model,
        "stream": True,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "messages": prompt.messages(),
        "stream_options": {"include_usage": True},
    }
    begin = clock()
    out = Outcome(prompt.group, 0, started, 0.0, sent_at=time.time())
    try:
        # the whole request within timeout_s: httpx's own timeout is per read, which a
        # slow stream of tokens never trips
        async with (
            asyncio.timeout(timeout_s),
            client.stream("POST", "/v1/chat/completions", json=body, timeout=timeout_s) as resp,
        ):
            out.status = resp.status_code
            out.specialist = resp.headers.get("x-mixserve-specialist", "")
            if resp.status_code != 200:
                out.error = _error_code(await resp.aread()) or str(resp.status_code)
                out.retry_after_s = _seconds(resp.headers.get("retry-after"))
                out.request_id = resp.headers.get("x-request-id", "")  # its server-side trace
            else:
                async for line in resp.aiter_lines():
                    absorb_event(out, line, clock() - begin)
                if not out.done and not out.error:  # a stream cut off without a word
                    out.error = "truncated"
    except (TimeoutError, httpx.TimeoutException):
        out.status, out.error = 0, "client_timeout"
    except httpx.HTTPError as exc:
        out.status, out.error = 0, f"client_error: {type(exc).__name__}"
    out.latency_s = clock() - begin
    return out


def absorb_event(out: Outcome, line: str, elapsed: float) -> None:
    """Take one server-sent events line of a streamed answer into ``out``."""
    if line == "data: [DONE]":
        out.done = True
        return
    if not line.startswith("data: "):
        return
    event = json.loads(line[6:])
    if "error" in event:  # in-band, after the headers went out
        out.error = str(event["error"].get("code") or "error")
        return
    meta = event.get("mixserve")
    if not out.request_id and isinstance(meta, dict) and meta.get("request_id"):
        out.request_id = str(meta["request_id"])
        out.moved = moved(meta)
    if isinstance(meta, dict) and meta.get("retries"):  # the final chunk's, when any
        out.retried = len(meta["retries"])
        out.resumed = sum(1 for r in meta["retries"] if r.get("stage") == "resumed")
    choices = event.get("choices") or []
    if out.ttft_s is None and choices and choices[0].get("delta", {}).get("content"):
        out.ttft_s = elapsed
    usage = event.get("usage")
    if usage:
        out.output_tokens = int(usage.get("completion_tokens", 0))
        out.prompt_tokens = int(usage.get("prompt_tokens", 0))
        details = usage.get("prompt_tokens_details") or {}
        out.cached_tokens = int(details.get("cached_tokens") or 0)
    if not out.specialist and event.get("model"):
        out.specialist = str(event["model"])


def moved(meta: dict[str, Any]) -> str:
    """How mixserve's balancing moved the request, from its ``mixserve`` object."""
    policy = meta.get("policy") or {}
    if (meta.get("routing") or {}).get("reassigned_from"):
        return "reassigned"
    if any(c.get("role") == "spill" for c in policy.get("calls") or []):
        return "spilled"
    if policy.get("waited_s"):
        return "waited"
    return ""


def _seconds(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:  # an HTTP date: not sent by mixserve
        return 0.0


def _error_code(raw: bytes) -> str:
    try:
        return str(json.loads(raw)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return ""
