"""Model-level routing: which specialist answers a query.

Public API: ``build_router``, ``Router``, ``RoutingDecision``, ``SpecialistProfile``,
``register_head``, ``head_names``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from router_model.heads import head_names, register_head
from router_model.router import Router, RoutingDecision, SpecialistProfile

__all__ = [
    "Router",
    "RoutingDecision",
    "SpecialistProfile",
    "build_router",
    "head_names",
    "register_head",
]


def build_router(
    model_dir: str | Path,
    profiles: Sequence[SpecialistProfile],
    *,
    layer: int,
    head: str = "nearest_centroid",
    temperature: float = 0.05,
    max_query_tokens: int = 128,
    fallback: str | None = None,
    min_confidence: float = 0.0,
) -> Router:
    """Load the router LLM (first ``layer`` layers) and fit ``head`` on the profiles."""
    from router_model.backbone import HiddenStateEmbedder
    from router_model.heads import build_head

    embedder = HiddenStateEmbedder(model_dir, layer, max_query_tokens)
    embedder.load()
    return Router(
        embedder.embed,
        build_head(head, temperature=temperature),
        profiles,
        fallback=fallback,
        min_confidence=min_confidence,
        head_name=head,
    )
