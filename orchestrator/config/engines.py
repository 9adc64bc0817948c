"""Engines and the specialists on them: engine settings (vLLM or the fake), an engine
shared by specialists, which replica takes a call, and autoscaling."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any, Literal, Self

from pydantic import Field, field_validator, model_validator

from orchestrator.config.base import EngineArg, ModelSource, Name, Price, Resources, _Strict
from orchestrator.ray_compat import POWER_OF_TWO_ROUTER

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
