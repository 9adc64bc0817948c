"""Model-level routing: which specialist answers a query.

Public API: ``build_router``, ``Router``, ``RoutingDecision``, ``SpecialistProfile``,
``register_head``, ``head_names``, ``PriorHead``, ``load_artifact``, ``ArtifactError``,
``read_score_tables``, ``ScoreTableError``, ``relative_costs``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from router_model.artifact import ArtifactError, RouterArtifact, load_artifact
from router_model.early_exit import EarlyExit
from router_model.heads import (
    FewShotHead,
    NearestCentroidHead,
    build_head,
    head_names,
    register_head,
)
from router_model.prior import PriorHead  # registers the "prior" head
from router_model.router import Router, RoutingDecision, SpecialistProfile, relative_costs
from router_model.scores import ScoreTableError, read_score_tables

__all__ = [
    "ArtifactError",
    "PriorHead",
    "Router",
    "RoutingDecision",
    "ScoreTableError",
    "SpecialistProfile",
    "build_router",
    "head_names",
    "load_artifact",
    "read_score_tables",
    "register_head",
    "relative_costs",
]


def artifact_columns(
    artifact_models: Sequence[str], profiles: Sequence[SpecialistProfile], models: Mapping[str, str]
) -> list[int]:
    """Head columns standing for each specialist, from config's specialist → model map."""
    unmapped = [p.name for p in profiles if p.name not in models]
    if unmapped:
        raise ArtifactError(
            f"router.models must map every specialist to a model of the artifact; "
            f"missing: {', '.join(unmapped)}"
        )
    unknown = sorted({m for m in models.values() if m not in artifact_models})
    if unknown:
        raise ArtifactError(
            f"router.models names models the artifact does not score: {', '.join(unknown)} "
            f"(it scores {', '.join(artifact_models)})"
        )
    return [artifact_models.index(models[p.name]) for p in profiles]


def build_router(
    model_dir: str | Path,
    profiles: Sequence[SpecialistProfile],
    *,
    layer: int,
    max_query_tokens: int = 128,
    dtype: str = "float32",
    compile: bool = False,
    threads: int | None = None,
    head: str = "nearest_centroid",
    head_params: Mapping[str, float | int] | None = None,
    artifact: str | Path | None = None,
    models: Mapping[str, str] | None = None,
    tradeoff: float = 0.0,
    fallback: str | None = None,
    min_confidence: float = 0.0,
    exit_artifact: str | Path | None = None,
    exit_layer: int = 0,
    exit_margin: float = 0.0,
    exit_agree: bool = False,
) -> Router:
    """Load the router LLM (first ``layer`` layers) and its head.

    With ``artifact`` the learned head it holds is used (its backbone must match); without,
    the few-shot ``head`` is fitted on each specialist's description and examples. With
    ``exit_artifact`` (a probe trained at ``exit_layer``) queries the probe is sure of by
    ``exit_margin`` are decided there, the rest at ``layer``; with ``exit_agree`` also those
    on which the probe and a nearest-centroid head fitted on the specialists' descriptions
    and examples at ``exit_layer`` agree.
    """
    from router_model.backbone import BackboneSpec, HiddenStateEmbedder

    if threads is not None:
        import torch

        torch.set_num_threads(threads)  # Ray sets one thread for fractional-CPU actors
    # with an early exit every query runs the two stages: compile those, not the one pass
    # as well (18 layers took ~70 s to compile here; the one pass only fits the head)
    one_pass = compile and exit_artifact is None
    embedder = HiddenStateEmbedder(
        model_dir, layer, max_query_tokens, dtype=dtype, compile=one_pass
    )
    columns: list[int] | None = None
    if artifact is not None:
        trained = load_artifact(artifact)
        trained.check_backbone(embedder.spec)
        columns = artifact_columns(trained.models, profiles, models or {})
        routing_head, head_name = trained.head, trained.head_name
    else:
        routing_head, head_name = build_head(head, **dict(head_params or {})), head
    probe: RouterArtifact | None = None
    if exit_artifact is not None:
        probe = load_artifact(exit_artifact)
        spec = embedder.spec
        probe.check_backbone(BackboneSpec(spec.weights, exit_layer, spec.max_tokens, spec.dtype))
        missing = [p.name for p in profiles if p.name not in probe.models]
        if missing:
            raise ArtifactError(
                f"the early-exit probe scores {', '.join(probe.models)}, "
                f"not every specialist by name (missing: {', '.join(missing)})"
            )
    embedder.load()
    early_exit = None
    if probe is not None:
        embedder.add_stage(exit_layer, compile=compile)
        agree = None
        if exit_agree:
            agree = NearestCentroidHead()
            agree.fit_examples(
                [
                    embedder.embed_until([p.description, *p.examples], exit_layer).pooled
                    for p in profiles
                ]
            )
        early_exit = EarlyExit(
            lambda queries: embedder.embed_until(queries, exit_layer),
            probe.head,
            [probe.models.index(p.name) for p in profiles],
            exit_layer,
            exit_margin,
            probe.head_name,
            agree,
        )
    if isinstance(routing_head, FewShotHead):
        routing_head.fit_examples([embedder.embed([p.description, *p.examples]) for p in profiles])
    elif artifact is None:
        raise ValueError(f"head {head!r} is learned from score tables: set router.artifact")
    return Router(
        embedder.embed,
        routing_head,
        profiles,
        columns=columns,
        tradeoff=tradeoff,
        fallback=fallback,
        min_confidence=min_confidence,
        head_name=head_name,
        layer=layer,
        early_exit=early_exit,
    )
