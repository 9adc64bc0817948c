"""Answer policies: one specialist, a cascade or an ensemble; spill-over and waiting when a
specialist is saturated; retries and resumption of lost calls."""

from __future__ import annotations

from pydantic import Field

from orchestrator.config.base import Name, _Strict


class CascadeConfig(_Strict):
    min_mean_logprob: float = Field(
        -1.0,
        le=0,
        description="An answer whose mean token log-probability is below this escalates.",
    )
    min_quality: float = Field(
        0.5, ge=0, le=1, description="Predicted quality a cheaper specialist needs to be tried."
    )


class EnsembleConfig(_Strict):
    top_k: int = Field(2, ge=2, le=8, description="Specialists (best utility first) asked.")
    synthesizer: Name | None = Field(
        None, description="Specialist composing the final answer; default: the router's choice."
    )


class SpillConfig(_Strict):
    enabled: bool = Field(
        True, description="A routed request whose specialist is saturated goes to the next best."
    )
    max_spills: int = Field(1, ge=1, le=8, description="Other specialists tried, best first.")
    min_score: float = Field(
        0.0, ge=0, le=1, description="Never spill to a specialist predicted below this quality."
    )
    max_utility_loss: float | None = Field(
        None,
        ge=0,
        description="Spill only to a specialist whose predicted utility is within this of "
        "the router's first choice (None: any, down to min_score); past it the request "
        "gets the first choice's 503.",
    )
    max_wait_s: float = Field(
        5.0,
        ge=0,
        le=600,
        description="With nowhere to spill, wait this long for a slot of the saturated "
        "specialist (within the request's deadline) before its 503; 0: no waiting.",
    )
    max_waiting: int = Field(
        64, ge=1, le=100000, description="Requests one gateway replica lets wait per engine."
    )
    joint_assignment: bool = Field(
        True,
        description="Queries routed in one router batch are assigned jointly against the "
        "specialists' free slots (balanced assignment), within max_utility_loss and min_score.",
    )


class RetryConfig(_Strict):
    """What a call does when the replica answering it is lost (killed, its node gone,
    its engine dead): before its first token it is sent again (Serve picks a live
    replica, or waits for the replacement); mid-answer it is continued on another
    replica from the text it had, so the client sees one unbroken answer."""

    max_retries: int = Field(
        3, ge=0, le=10, description="Times one call is sent again after losing its replica."
    )
    resume: bool = Field(
        True,
        description="Continue an answer cut by a lost replica from the text it had "
        "(off: the stream ends with a `replica_lost` error event instead).",
    )
    backoff_s: float = Field(
        0.2,
        ge=0,
        le=30,
        description="Pause before the first retry (doubled for each next one), while "
        "Serve learns the replica is gone.",
    )


class PolicyConfig(_Strict):
    default: str = Field(
        "single",
        description="Policy of routed requests (single, cascade, ensemble); per request too.",
    )
    max_calls: int = Field(3, ge=1, le=16, description="Most specialist calls of one request.")
    max_total_tokens: int = Field(
        8192, ge=1, description="Most prompt + completion tokens one request spends over its calls."
    )
    cascade: CascadeConfig = Field(default_factory=CascadeConfig, description="Cascade policy.")
    ensemble: EnsembleConfig = Field(default_factory=EnsembleConfig, description="Ensemble policy.")
    spill: SpillConfig = Field(
        default_factory=SpillConfig,
        description="Spill-over: where a streamed call goes when its specialist is saturated.",
    )
    retry: RetryConfig = Field(
        default_factory=RetryConfig,
        description="Retries and resumption of calls whose replica was lost.",
    )
