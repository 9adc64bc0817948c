"""Exact-match response cache in Redis, for deterministic (temperature 0) requests only.

The key covers everything that decides the answer: specialist, its model version (the
config it was deployed with, which names its weights), the conversation, the retrieved
passages and the sampling settings. Redis trouble never fails a request: the cache is
skipped and the failure logged.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from orchestrator.telemetry.log_throttle import Throttled

logger = logging.getLogger(__name__)
throttled = Throttled(logger)
PREFIX = "mixserve:cache:v1:"


def digest_of(value: Any) -> str:
    """A short stable digest of JSON-able ``value`` (a config, a policy's state)."""
    blob = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


BASIC = ("max_tokens", "temperature", "top_p", "stop", "seed")
# what else changes an answer, in a payload only when the request sets it
SAMPLING = (
    *BASIC,
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "top_logprobs",
    "response_format",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "message_fields",
    "n",
    "prompt",  # a legacy completion's raw prompt: not the chat answer to the same text
)


def cache_key(specialist: str, model_version: str, payload: dict[str, Any]) -> str:
    material = {
        "specialist": specialist,
        "model_version": model_version,
        "messages": payload["messages"],
        "passages": payload.get("passages", []),
        "sampling": {k: payload.get(k) for k in SAMPLING if k in payload or k in BASIC},
    }
    blob = json.dumps(material, sort_keys=True, separators=(",", ":"))
    return PREFIX + hashlib.sha256(blob.encode()).hexdigest()


class ResponseCache:
    def __init__(self, client: Any, ttl_s: int) -> None:
        self.client = client
        self.ttl_s = ttl_s
        self.failures = 0  # Redis errors met (each one a lookup or fill skipped)

    async def get(self, key: str) -> dict[str, Any] | None:
        try:
            raw = await self.client.get(key)
        except Exception as exc:  # noqa: BLE001 - a cache outage must not fail requests
            self.failures += 1
            throttled.warning("response cache read failed: %s", exc)
            return None
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            logger.warning("dropping corrupt cache entry %s", key)
            return None
        return value if isinstance(value, dict) else None

    async def put(self, key: str, value: dict[str, Any]) -> None:
        try:
            await self.client.set(key, json.dumps(value), ex=self.ttl_s)
        except Exception as exc:  # noqa: BLE001
            self.failures += 1
            throttled.warning("response cache write failed: %s", exc)
