"""The gateway replica's request path: HTTP routes, the OpenAI protocol, planning
(routing, retrieval, budget) and answering (cache, policies, calls, streaming).

Public API: ``Gateway`` (the Serve ingress class; importing it pulls in FastAPI) and
``assign_jointly`` (the router batch's joint assignment against free slots, which the
router deployment runs), ``EngineAddress`` (an engine deployment found by name) and
``EngineCall`` (the typed wire from the gateway to an engine replica).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator.serving.addresses import EngineAddress
from orchestrator.serving.joint import assign_jointly
from orchestrator.serving.wire import EngineCall

if TYPE_CHECKING:
    from orchestrator.serving.gateway import Gateway

__all__ = ["EngineAddress", "EngineCall", "Gateway", "assign_jointly"]


def __getattr__(name: str) -> Any:
    if name == "Gateway":
        from orchestrator.serving.gateway import Gateway

        return Gateway
    raise AttributeError(name)
