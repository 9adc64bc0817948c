"""The orchestrator: the service, in layers (``docs/architecture.md``): ``cli`` →
``runtime`` → ``app`` → ``deployments`` → ``serving`` → ``billing`` → ``telemetry`` →
``config`` → ``errors``, ``policies``, ``profiles``, ``redis_clients``, ``settings``.

Public API: ``MixserveConfig``, ``ConfigError``, ``load_config``, ``parse_config``,
``build_apps`` (the Serve applications; imported lazily: it pulls in Ray Serve and FastAPI).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator.config import ConfigError, MixserveConfig, load_config, parse_config

if TYPE_CHECKING:
    from orchestrator.app import build_apps

__all__ = ["ConfigError", "MixserveConfig", "build_apps", "load_config", "parse_config"]


def __getattr__(name: str) -> Any:
    if name == "build_apps":
        from orchestrator.app import build_apps

        return build_apps
    raise AttributeError(name)
