"""The router: its LLM, the pooled layer, the head, the early exit and its fallback."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from orchestrator.config.base import ModelSource, Name, Resources, _CallBounds, _Strict


class EarlyExitConfig(_Strict):
    """A probe on an early layer decides the queries it is sure of; the rest go on to the
    full depth (`router.layer`) and its head."""

    layer: int = Field(ge=1, description="Router LLM layer the probe reads (below router.layer).")
    artifact: str = Field(
        description="The probe: a router artifact trained at `layer` that scores every "
        "specialist by name (relative to config)."
    )
    min_margin: float = Field(
        0.5,
        ge=0,
        le=1,
        description="A query exits when the probe's best specialist leads the second by this.",
    )
    agree: bool = Field(
        False,
        description="A query also exits when the probe and a nearest-centroid head on the "
        "specialists' descriptions and examples at `layer` pick the same specialist.",
    )


class RouterConfig(_CallBounds):
    model: ModelSource = Field(description="The small router LLM.")
    layer: int = Field(
        6,
        ge=1,
        description="Hidden layer whose states are pooled (later layers are not run). With "
        "`artifact`, the layer it was trained at is used: leave this out, or set it to that.",
    )
    max_query_tokens: int = Field(128, ge=8, description="Query tokens the router reads.")
    dtype: Literal["auto", "bfloat16", "float32"] = Field(
        "auto",
        description="Precision the router LLM runs in. auto: bfloat16 where the CPU of the "
        "router's node computes in it natively (AVX512-BF16 or AMX), float32 elsewhere (on "
        "AVX2 alone bfloat16 measured 3-5x slower; benchmarks/router_latency.py --dtypes).",
    )
    compile: bool = Field(False, description="Run the router LLM under torch.compile.")
    threads: int = Field(
        1,
        ge=1,
        le=256,
        description="Torch threads of each router replica. One: on cores shared with the "
        "gateway and retriever, a second thread's OpenMP team waited more than it worked "
        "(routed ceiling 36 -> 49 requests/s, 31 -> 14 ms of router CPU a decision; "
        "`mixserve bench ceiling`); add replicas to route more at once.",
    )
    head: str = Field(
        "nearest_centroid",
        description="Few-shot routing head (by registered name) used when no artifact is set.",
    )
    head_params: dict[str, float | int] = Field(
        default_factory=lambda: {"temperature": 0.05},
        description="Parameters of the few-shot head.",
    )
    artifact: str | None = Field(
        None, description="Router artifact from `mixserve router train` (relative to config)."
    )
    models: dict[str, str] = Field(
        default_factory=dict,
        description="Specialist name -> the artifact model whose predicted quality it takes.",
    )
    quality_cost_tradeoff: float = Field(
        0.0,
        ge=0,
        description="lambda in quality - lambda x relative cost; overridable per request.",
    )
    expected_input_tokens: int = Field(
        500, ge=0, description="Prompt tokens assumed when comparing specialists' costs."
    )
    expected_output_tokens: int = Field(
        250, ge=0, description="Completion tokens assumed when comparing specialists' costs."
    )
    fallback: Name | None = Field(
        None, description="Specialist used when confidence is below `min_confidence`."
    )
    min_confidence: float = Field(0.0, ge=0, le=1, description="Confidence floor.")
    early_exit: EarlyExitConfig | None = Field(
        None, description="Per-query early exit: decide sure queries at an early layer."
    )
    replicas: int = Field(1, ge=1, description="Router replicas.")
    usd_per_replica_hour: float = Field(
        0.0, ge=0, le=100_000, description="USD per router replica-hour, by busy-time share."
    )
    resources: Resources = Field(default_factory=Resources, description="Per-replica resources.")

    @model_validator(mode="after")
    def _exit_below_depth(self) -> RouterConfig:
        if self.early_exit is not None and self.early_exit.layer >= self.layer:
            raise ValueError(
                f"early_exit.layer ({self.early_exit.layer}) must be below layer ({self.layer})"
            )
        return self
