"""Who is calling: the API key in ``Authorization: Bearer <key>``, checked against Redis
on every request (so a revoked key is refused at once)."""

from __future__ import annotations

import logging
from typing import Any

from orchestrator.errors import APIError
from orchestrator.keys import KeyRecord, lookup_key

logger = logging.getLogger(__name__)
MAX_HEADER_CHARS = 256
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _unauthorized(message: str, code: str) -> APIError:
    err = APIError(401, message, type="authentication_error", code=code)
    err.extra_headers = dict(_CHALLENGE)
    return err


async def authenticate(client: Any, header: str | None) -> KeyRecord:
    """The caller's key record; 401 for a missing, malformed, unknown or revoked key, 503
    when the key store cannot be reached (fail closed: no key is taken on trust)."""
    if not header:
        raise _unauthorized(
            "missing API key: send 'Authorization: Bearer <key>'", "missing_api_key"
        )
    scheme, _, key = header.strip().partition(" ")
    if len(header) > MAX_HEADER_CHARS or scheme.lower() != "bearer" or not key.strip():
        raise _unauthorized(
            "malformed Authorization header: expected 'Bearer <key>'", "invalid_api_key"
        )
    try:
        record = await lookup_key(client, key.strip())
    except Exception as exc:  # noqa: BLE001 - any Redis failure
        logger.warning("key lookup failed: %s", exc)
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
        raise _unauthorized(f"API key {record.key_id} has been revoked", "revoked_api_key")
    return record
