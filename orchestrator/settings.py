"""Settings read from the environment. Nothing else in mixserve reads ``os.environ``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    cache_dir: Path
    redis_url: str | None
    ray_address: str | None
    state_dir: Path
    run_id: str | None

    @property
    def state_file(self) -> Path:
        return self.state_dir / "up.json"


def get_settings() -> Settings:
    """Read the environment now (not at import time, so tests can set it)."""
    cache = Path(os.environ.get("MIXSERVE_CACHE_DIR") or Path.home() / ".cache" / "mixserve")
    return Settings(
        cache_dir=cache,
        redis_url=os.environ.get("REDIS_URL") or None,
        ray_address=os.environ.get("RAY_ADDRESS") or None,
        state_dir=Path(os.environ.get("MIXSERVE_STATE_DIR") or cache / "run"),
        run_id=os.environ.get("MIXSERVE_RUN_ID") or None,
    )
