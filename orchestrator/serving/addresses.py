"""Where the gateway finds an engine deployment: each engine runs as a Serve application
of its own (so a changed specialist rolls over only its own replicas), and the gateway
looks its handle up by application and deployment name in its replica."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EngineAddress:
    app: str
    deployment: str

    def handle(self) -> Any:
        from ray import serve

        return serve.get_deployment_handle(self.deployment, app_name=self.app)


def handle_of(target: Any) -> Any:
    """A deployment handle for ``target``: an ``EngineAddress``, or a handle already."""
    return target.handle() if isinstance(target, EngineAddress) else target
