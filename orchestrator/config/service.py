"""The service around the models: the gateway (HTTP, admission, limits), keys, the
ledger, the response cache and traces."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from orchestrator.config.base import Resources, _Strict


class GatewayConfig(_Strict):
    host: str = Field("127.0.0.1", description="HTTP bind address.")
    port: int = Field(8000, ge=1, le=65535, description="HTTP port.")
    proxy_location: Literal["EveryNode", "HeadOnly"] = Field(
        "EveryNode", description="Where Serve runs HTTP proxies: on every node, or the head."
    )
    replicas: int = Field(
        2,
        ge=1,
        description="Gateway replicas: two by default, so one lost (killed, its node gone) "
        "leaves the other serving while Serve replaces it.",
    )
    resources: Resources = Field(
        default_factory=lambda: Resources(num_cpus=0.1),
        description="Per-replica resources (a custom resource places it on CPU nodes).",
    )
    max_ongoing_requests: int = Field(256, ge=1, description="Concurrent requests per replica.")
    max_queued_requests: int = Field(512, ge=1, description="Queue bound before 503.")
    admission_limit: int | None = Field(
        None,
        ge=1,
        description="Generation requests in progress per gateway replica before 429 at once; "
        "default: its share of every specialist replica's running and queued slots.",
    )
    max_tokens_limit: int = Field(4096, ge=1, description="Largest `max_tokens` accepted.")
    max_n: int = Field(
        8, ge=1, le=128, description="Largest `n` (choices per chat request) accepted."
    )
    default_max_tokens: int = Field(256, ge=1, description="`max_tokens` when not given.")
    request_timeout_s: float = Field(300.0, gt=0, description="Deadline of one request.")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Largest request body.")
    max_header_bytes: int = Field(
        32_768, ge=1024, le=1_048_576, description="Largest total size of a request's headers."
    )


class AuthConfig(_Strict):
    enabled: bool = Field(
        False, description="Require an API key (`mixserve keys create`) on every API call."
    )


class LedgerConfig(_Strict):
    enabled: bool = Field(True, description="Record every request's cost in Redis.")
    retention_days: int = Field(
        30, ge=1, le=3650, description="Days records and daily counters are kept."
    )
    outage_budget_policy: Literal["closed", "open"] = Field(
        "closed",
        description="When Redis is down: refuse (503) or serve keys with budgets unchecked.",
    )


class CacheConfig(_Strict):
    enabled: bool = Field(True, description="Exact-match response cache (temperature 0 only).")
    ttl_s: int = Field(3600, ge=1, description="Seconds a cached response lives.")


class TracingConfig(_Strict):
    enabled: bool = Field(True, description="Trace every request (OpenTelemetry).")
    sample_ratio: float = Field(
        1.0, ge=0, le=1, description="Share of requests traced (the rest record no spans)."
    )
    record_content: bool = Field(
        False, description="Put prompt and completion text into spans (off: only counts)."
    )
    store_max_traces: int = Field(
        10_000,
        ge=0,
        le=10_000_000,
        description="Recent traces kept in Redis for GET /v1/traces/{id} (0: none).",
    )
    store_ttl_s: int = Field(86_400, ge=60, description="Seconds a stored trace is kept.")
    file: bool = Field(False, description="Also append spans to a rotating JSONL file.")
    file_max_mb: float = Field(64.0, gt=0, le=100_000, description="Size a file rotates at.")
    file_backups: int = Field(5, ge=1, le=1000, description="Rotated files kept.")
    export_delay_ms: int = Field(
        250, ge=10, le=60_000, description="Longest a finished span waits before export."
    )
