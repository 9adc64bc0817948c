"""Who is calling: the API key in ``Authorization: Bearer <key>``, checked against Redis
on every request (so a revoked key is refused at once)."""

from __future__ import annotations

import logging
from typing import Any

from orchestrator.billing.keys import KeyRecord, hash_key, lookup_key
from orchestrator.errors import APIError
from orchestrator.telemetry.log_throttle import Throttled

logger = logging.getLogger(__name__)
throttled = Throttled(logger)
MAX_HEADER_CHARS = 256
MAX_KNOWN_KEYS = 10_000
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _unauthorized(message: str, code: str) -> APIError:
    err = APIError(401, message, type="authentication_error", code=code)
    err.extra_headers = dict(_CHALLENGE)
    return err


async def authenticate(
    client: Any, header: str | None, known: dict[str, KeyRecord] | None = None
) -> KeyRecord:
    """The caller's key record; 401 for a missing, malformed, unknown or revoked key.

    ``known`` remembers the keys seen valid: while Redis cannot be reached they are still
    served (nothing can be revoked meanwhile), and any other key gets 503."""
    if not header:
        raise _unauthorized(
            "missing API key: send 'Authorization: Bearer <key>'", "missing_api_key"
        )
    scheme, _, key = header.strip().partition(" ")
    if len(header) > MAX_HEADER_CHARS or scheme.lower() != "bearer" or not key.strip():
        raise _unauthorized(
            "malformed Authorization header: expected 'Bearer <key>'", "invalid_api_key"
        )
    key = key.strip()
    try:
        record = await lookup_key(client, key)
    except Exception as exc:  # noqa: BLE001 - any Redis failure
        throttled.warning("key lookup failed: %s", exc)
        remembered = (known or {}).get(hash_key(key))
        if remembered is not None:
            return remembered
        raise APIError(
            503,
            "API keys cannot be checked right now; retry shortly",
            type="overloaded_error",
            code="auth_unavailable",
            retry_after_s=1,
        ) from None
    if record is None:
        raise _unauthorized("invalid API key", "invalid_api_key")
    if record.revoked:
        if known is not None:
            known.pop(hash_key(key), None)
        raise _unauthorized(f"API key {record.key_id} has been revoked", "revoked_api_key")
    if known is not None:
        if len(known) >= MAX_KNOWN_KEYS:
            known.pop(next(iter(known)))
        known[hash_key(key)] = record
    return record
