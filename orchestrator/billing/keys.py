"""API keys, kept in Redis as hashes only: the key itself is shown once, at creation.

Layout: ``mixserve:keys:hash:<sha256 of key>`` holds the record (tenant, limits, revoked);
``mixserve:keys:id:<key id>`` points a key id (the first 12 hex digits of the hash: safe
to show, names the key in ``list`` and ``revoke``) at its hash; ``mixserve:keys:all`` is
the set of hashes. A lookup reads Redis every time, so a revocation holds at once.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

from orchestrator.redis_clients import text, texts

PREFIX = "mixserve:keys:"
KEY_PATTERN = re.compile(r"^msk-[A-Za-z0-9_-]{32}$")
TENANT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
MAX_BUDGET_USD = 1_000_000.0
MAX_PER_MINUTE = 10_000_000


class KeyStoreError(ValueError):
    """Bad input to the key store (a message fit for one line of the CLI)."""


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    tenant: str
    created: float
    budget_usd: float | None = None
    rpm: int | None = None
    tpm: int | None = None
    revoked: bool = False

    def fields(self) -> dict[str, str]:
        return {
            k: "" if v is None else str(int(v) if isinstance(v, bool) else v)
            for k, v in asdict(self).items()
        }

    @classmethod
    def from_fields(cls, raw: dict[Any, Any]) -> KeyRecord:
        f = texts(raw)

        def opt(name: str, kind: type) -> Any:
            return kind(f[name]) if f.get(name) else None

        return cls(
            key_id=f["key_id"],
            tenant=f["tenant"],
            created=float(f["created"]),
            budget_usd=opt("budget_usd", float),
            rpm=opt("rpm", int),
            tpm=opt("tpm", int),
            revoked=f.get("revoked") == "1",
        )


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_limits(tenant: str, budget_usd: float | None, rpm: int | None, tpm: int | None) -> None:
    if not TENANT_PATTERN.match(tenant):
        raise KeyStoreError(
            f"tenant {tenant!r} must be 1-64 characters of a-z, 0-9, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    if budget_usd is not None and not 0 < budget_usd <= MAX_BUDGET_USD:
        raise KeyStoreError(f"budget must be above 0 and at most {MAX_BUDGET_USD:,.0f} USD")
    for name, value in (("rpm", rpm), ("tpm", tpm)):
        if value is not None and not 1 <= value <= MAX_PER_MINUTE:
            raise KeyStoreError(f"{name} must be between 1 and {MAX_PER_MINUTE:,}")


class KeyStore:
    """Create, list and revoke keys (synchronous Redis client: the CLI's side)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def create(
        self,
        tenant: str,
        budget_usd: float | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
    ) -> tuple[str, KeyRecord]:
        check_limits(tenant, budget_usd, rpm, tpm)
        key = "msk-" + secrets.token_urlsafe(24)
        digest = hash_key(key)
        record = KeyRecord(digest[:12], tenant, time.time(), budget_usd, rpm, tpm)
        pipe = self.client.pipeline(transaction=True)  # all of it or none of it
        pipe.hset(PREFIX + "hash:" + digest, mapping=record.fields())
        pipe.set(PREFIX + "id:" + record.key_id, digest)
        pipe.sadd(PREFIX + "all", digest)
        pipe.execute()
        return key, record

    def list(self, tenant: str | None = None) -> list[KeyRecord]:
        records = []
        for digest in self.client.smembers(PREFIX + "all"):
            raw = self.client.hgetall(PREFIX + "hash:" + text(digest))
            if raw:
                records.append(KeyRecord.from_fields(raw))
        chosen = [r for r in records if tenant is None or r.tenant == tenant]
        return sorted(chosen, key=lambda r: (r.tenant, r.created))

    def revoke(self, key_id: str) -> KeyRecord:
        digest = (
            self.client.get(PREFIX + "id:" + key_id)
            if re.fullmatch(r"[0-9a-f]{12}", key_id)
            else None
        )
        if digest is None:
            raise KeyStoreError(f"no key with id {key_id!r} (see 'mixserve keys list')")
        name = text(digest)
        self.client.hset(PREFIX + "hash:" + name, "revoked", "1")
        return KeyRecord.from_fields(self.client.hgetall(PREFIX + "hash:" + name))


async def lookup_key(client: Any, key: str) -> KeyRecord | None:
    """The record of ``key`` (asynchronous client: the gateway's side), or None."""
    if not KEY_PATTERN.match(key):
        return None
    raw = await client.hgetall(PREFIX + "hash:" + hash_key(key))
    return KeyRecord.from_fields(raw) if raw else None
