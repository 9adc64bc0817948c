"""A planned request and its answer: the ``Plan`` the planner makes and the answering side
carries out, the ``Answer`` accumulated from a specialist's chunks, and the small rules
between them (the request's policy, the passages that fit, usage over every call)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.billing import KeyRecord, Settlement
from orchestrator.config import MixserveConfig, PolicyConfig
from orchestrator.errors import APIError, http_status
from orchestrator.policies import PolicySettings
from orchestrator.serving import protocol
from orchestrator.serving.protocol import MixserveOptions
from orchestrator.telemetry import RequestTrace


@dataclass
class Plan:
    request_id: str
    specialist: str
    payload: dict[str, Any]
    meta: dict[str, Any]
    cache_key: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    policy: str = "single"
    settings: PolicySettings = field(default_factory=PolicySettings)
    deadline: float = 0.0  # event-loop time by which every call of the request must end
    router_busy_s: float = 0.0
    retrieval_busy_s: float = 0.0
    key: KeyRecord | None = None  # the caller's API key, when auth is on
    started: float = field(default_factory=time.monotonic)
    closed: bool = False  # settled in the ledger (exactly once)
    first_token: bool = False  # time to first token observed
    # the ledger's idempotency id: drawn here, since clients choose (and may repeat) ids
    settle_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    trace: RequestTrace | None = None
    balance: bool = True  # may be reassigned, spilled over or queued (``mixserve.balance``)
    release_slot: Callable[[], None] | None = None  # the engine slot it holds (EngineSlots)
    retries: list[dict[str, Any]] = field(default_factory=list)  # calls sent again (lost replica)
    able: frozenset[str] | None = None  # who may answer it at all (tools: those with a parser)

    def settlement(self) -> Settlement:
        """What the ledger records of this request, as it stands now."""
        return Settlement(
            request_id=self.request_id,
            settle_id=self.settle_id,
            key=self.key,
            specialist=self.specialist,
            policy=self.policy,
            method=str(self.meta.get("policy", {}).get("method", "")),
            cached=bool(self.meta["cached"]),
            latency_s=time.monotonic() - self.started,
            trace_id=self.trace.trace_id if self.trace is not None else "",
        )


@dataclass
class Answer:
    """An answer accumulated from a specialist's chunks (token counts are cumulative)."""

    parts: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    busy_s: float = 0.0  # the specialist replica's busy time charged to this answer
    cached_tokens: int = 0  # prompt tokens the engine found in its prefix cache
    method: str = ""  # how the engine made it, when it has several ways (symbolic, ...)
    # each token's OpenAI log-probability entry, when the request asked for them
    logprobs: list[dict[str, Any]] | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # whole, as they add up
    # the choices after the first, by index (``n``); token counts stay on this one, summed
    # over every choice as the engine counts them
    others: dict[int, Answer] = field(default_factory=dict)

    def absorb(self, item: dict[str, Any]) -> str:
        self.prompt_tokens = int(item["prompt_tokens"])
        self.completion_tokens = int(item["completion_tokens"])
        self.busy_s = float(item.get("busy_s") or self.busy_s)
        self.cached_tokens = max(self.cached_tokens, int(item.get("cached_tokens") or 0))
        self.method = str(item.get("method") or self.method)
        index = int(item.get("index") or 0)
        choice = self if index == 0 else self.others.setdefault(index, Answer())
        return choice.take(item)

    def take(self, item: dict[str, Any]) -> str:
        """One choice's part of ``item``: its text, finish, log-probabilities and calls."""
        self.parts.append(item["text"])
        self.finish_reason = item["finish_reason"] or self.finish_reason
        entries = item.get("logprobs")
        if entries is not None:
            self.logprobs = [*(self.logprobs or []), *entries]
        for delta in item.get("tool_calls") or ():
            add_call(self.tool_calls, delta)
        return str(item["text"])

    def choices(self) -> list[tuple[int, Answer]]:
        """Every choice by index, this one first."""
        return [(0, self), *sorted(self.others.items())]

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": "".join(self.parts),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "finish_reason": self.finish_reason,
            "busy_s": self.busy_s,
            "cached_tokens": self.cached_tokens,
            "method": self.method,
            "logprobs": self.logprobs,
            "tool_calls": self.tool_calls,
        }


def add_call(calls: list[dict[str, Any]], delta: dict[str, Any]) -> None:
    """Fold one streamed tool-call delta (OpenAI's: ``index``, then ``id``, ``type`` and
    the function's ``name`` once, its ``arguments`` in pieces) into the whole calls."""
    index = int(delta.get("index", len(calls)))
    while len(calls) <= index:
        calls.append({"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
    call = calls[index]
    call["id"] = delta.get("id") or call["id"]
    function = delta.get("function") or {}
    call["function"]["name"] += function.get("name") or ""
    call["function"]["arguments"] += function.get("arguments") or ""


def settle_calls(calls: list[dict[str, Any]], answer: Answer, cached: bool) -> dict[str, Any]:
    """Put the streamed call's tokens and busy time in; usage summed over every call."""
    for call in calls:
        if call["outcome"] == "streamed" and not cached:
            call["prompt_tokens"] = answer.prompt_tokens
            call["completion_tokens"] = answer.completion_tokens
            call["busy_s"] = answer.busy_s
            call["cached_tokens"] = answer.cached_tokens
            if answer.method:
                call["method"] = answer.method
    if not calls:  # a cache entry from before policies
        return protocol.usage(answer.prompt_tokens, answer.completion_tokens)
    return protocol.usage(
        sum(int(c["prompt_tokens"]) for c in calls),
        sum(int(c["completion_tokens"]) for c in calls),
        sum(int(c.get("cached_tokens", 0)) for c in calls),
    )


@dataclass(frozen=True)
class Grounding:
    """What one specialist's prompts are grounded with (``collections`` None: all)."""

    collections: list[str] | None
    count: int


def grounding(config: MixserveConfig) -> dict[str, Grounding]:
    """Each specialist's collections and passage count, and under ``auto`` what serves
    every specialist (the union, the most passages): routing and retrieval run at the
    same time, so the search cannot wait for the choice."""
    top_k = config.retrieval.top_k
    every = [c.name for c in config.retrieval.collections]
    out = {
        s.name: Grounding(
            s.retrieval.collections,
            0 if not every else (top_k if s.retrieval.passages is None else s.retrieval.passages),
        )
        for s in config.specialists
    }
    named = [g.collections for g in out.values() if g.count]
    union = None if any(c is None for c in named) else sorted({c for cs in named for c in cs or []})
    out["auto"] = Grounding(union, max((g.count for g in out.values()), default=0))
    return out


def select_passages(
    hits: list[dict[str, Any]],
    max_chars: int,
    collections: list[str] | None = None,
    count: int | None = None,
) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    """The best hits from ``collections`` (all when None), at most ``count``, that fit in
    ``max_chars``: as prompt passages, and as the answer's sources."""
    mine = [h for h in hits if collections is None or h["collection"] in collections]
    passages, chosen, budget = [], [], max_chars
    for hit in mine[:count]:
        if len(hit["text"]) > budget:
            break
        budget -= len(hit["text"])
        passages.append((hit["source"], hit["text"]))
        chosen.append(hit)
    keys = ("id", "collection", "source", "offset", "score")
    return passages, [{k: h[k] for k in keys if k in h} for h in chosen]


def policy_for(
    config: PolicyConfig, model: str, options: MixserveOptions | None
) -> tuple[str, PolicySettings]:
    """The request's policy and its settings: config, with the request's overrides.

    A pinned specialist answers alone; asking a pinned request for another policy is an
    error. Overrides may tune a policy but never raise ``max_calls`` or the token bound.
    """
    asked = options.policy if options else None
    if model != "auto" and asked not in (None, "single"):
        raise APIError(
            400,
            f"policy '{asked}' needs model 'auto' (the router picks its specialists); "
            f"'{model}' pins one specialist",
            param="mixserve.policy",
            code="invalid_value",
        )
    policy = "single" if model != "auto" else asked or config.default
    cascade = options.cascade if options and options.cascade else None
    ensemble = options.ensemble if options and options.ensemble else None
    top_k = ensemble.top_k if ensemble and ensemble.top_k is not None else config.ensemble.top_k
    if policy == "ensemble" and top_k + 1 > config.max_calls:
        raise APIError(
            400,
            f"an ensemble of {top_k} plus its synthesis exceeds this service's "
            f"max_calls of {config.max_calls}",
            param="mixserve.ensemble.top_k",
            code="invalid_value",
        )

    def pick(override: float | None, default: float) -> float:
        return default if override is None else override

    settings = PolicySettings(
        max_calls=config.max_calls,
        max_total_tokens=config.max_total_tokens,
        min_mean_logprob=pick(
            cascade.min_mean_logprob if cascade else None, config.cascade.min_mean_logprob
        ),
        min_quality=pick(cascade.min_quality if cascade else None, config.cascade.min_quality),
        top_k=top_k,
        synthesizer=config.ensemble.synthesizer,
    )
    return policy, settings


async def replay(cached: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    yield cached


def outcome_of(exc: BaseException) -> str:
    """How a failed request is recorded: ``error <HTTP status>``, or ``disconnected``."""
    status = http_status(exc)
    return "disconnected" if status == 499 else f"error {status}"
