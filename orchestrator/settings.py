"""Settings read from the environment. Nothing else in mixserve reads ``os.environ``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# Set only by the process that starts a run, in the environment of every process the run
# starts (Serve replicas, vLLM's engine processes), never read from the user's: it is
# how a run's processes are found by pid (``orchestrator.runtime.procs``).
RUN_MARKER_VAR = "MIXSERVE_RUN_MARKER"


@dataclass(frozen=True)
class Settings:
    cache_dir: Path
    redis_url: str | None
    ray_address: str | None
    state_dir: Path
    run_id: str | None
    otlp_endpoint: str | None = None  # where spans go besides mixserve's own store
    otlp_protocol: str = "http/protobuf"  # or "grpc"
    otlp_headers: str | None = None  # "k1=v1,k2=v2", as OTEL_EXPORTER_OTLP_HEADERS
    # the Ray dashboard, whose REST API takes Serve configs (as `serve deploy -a` does)
    dashboard_address: str = "http://127.0.0.1:8265"
    api_key: str | None = None  # what `mixserve status` sends a gateway with auth on
    ray_auth_mode: str | None = None  # RAY_AUTH_MODE, as the user set it (None: Ray's default)
    ray_auth_token_path: Path | None = None  # RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token
    data_dir: Path | None = None  # MIXSERVE_DATA_DIR: retrieval collections (over config's)

    @property
    def state_file(self) -> Path:
        return self.state_dir / "up.json"


def get_settings() -> Settings:
    """Read the environment now (not at import time, so tests can set it)."""
    otlp = _otlp()
    cache = Path(os.environ.get("MIXSERVE_CACHE_DIR") or Path.home() / ".cache" / "mixserve")
    return Settings(
        cache_dir=cache,
        redis_url=os.environ.get("REDIS_URL") or None,
        ray_address=os.environ.get("RAY_ADDRESS") or None,
        state_dir=Path(os.environ.get("MIXSERVE_STATE_DIR") or cache / "run"),
        run_id=os.environ.get("MIXSERVE_RUN_ID") or None,
        otlp_endpoint=otlp[0],
        otlp_protocol=otlp[1],
        otlp_headers=otlp[2],
        dashboard_address=os.environ.get("RAY_DASHBOARD_ADDRESS") or "http://127.0.0.1:8265",
        api_key=os.environ.get("MIXSERVE_API_KEY") or None,
        ray_auth_mode=os.environ.get("RAY_AUTH_MODE") or None,
        data_dir=Path(os.environ["MIXSERVE_DATA_DIR"])
        if os.environ.get("MIXSERVE_DATA_DIR")
        else None,
        ray_auth_token_path=Path(
            os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token"
        ),
    )


def _otlp() -> tuple[str | None, str, str | None]:
    """The OTLP trace exporter's settings, by the OpenTelemetry variable names. The
    generic endpoint is a base URL (``/v1/traces`` is appended for HTTP); the
    traces-specific one is used as given."""
    env = os.environ
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or None
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None
    if endpoint is None and base is not None:
        endpoint = base if protocol == "grpc" else base.rstrip("/") + "/v1/traces"
    headers = env.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or env.get("OTEL_EXPORTER_OTLP_HEADERS")
    return endpoint, protocol, headers or None
