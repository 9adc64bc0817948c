"""The contract every specialist engine implements, and the request/chunk types it speaks.

An engine is constructed cheaply and synchronously from its config; ``start()`` loads the
model (under a deadline set by the caller); ``generate()`` takes OpenAI chat messages
(rendered by the model's chat template, or the one the request names) and streams
``Chunk``s whose ``text`` is the new text since the previous chunk, whose token counts
(and, when the request asks for ``logprobs``, the sum of the sampled tokens'
log-probabilities) are cumulative, and whose ``logprobs`` are the OpenAI log-probability
entries of this chunk's tokens when the request asks for ``top_logprobs``;
closing or cancelling a ``generate()`` stream aborts its request inside the engine (a
client that went away), and ``abort()`` stops one explicitly; ``load()`` tells how busy
it is (for replica routing); ``check_health()`` raises when the engine cannot serve;
``shutdown()`` releases processes and memory and is idempotent.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter an engine serves on its base model; ``number`` is unique per engine."""

    name: str
    number: int
    path: str


@dataclass(frozen=True)
class GenerationRequest:
    request_id: str
    # OpenAI chat messages ({"role": ..., "content": ...}), system prompt and passages in them
    messages: list[dict[str, Any]]
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    logprobs: bool = False  # report the sampled tokens' log-probabilities (cascades judge by them)
    # OpenAI's per-token log-probabilities, with this many alternatives each (0-20); None:
    # not asked
    top_logprobs: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[str, float] | None = None  # token id (as a string) -> bias, -100..100
    # OpenAI's response_format, checked by the gateway: {"type": "json_object"} or
    # {"type": "json_schema", "json_schema": {...}}; the engine constrains its decoding
    response_format: dict[str, Any] | None = None
    chat_template: str | None = None  # a Jinja chat template; None: the model's own
    # OpenAI tool definitions the model may call, and how (auto, none, required, or
    # {"type": "function", "function": {"name": ...}}); calls come back as Chunk.tool_calls
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    n: int = 1  # choices to sample (each chunk names its own by index)
    # a raw text prompt (OpenAI's legacy completions): no chat template, no system prompt;
    # ``messages`` then hold it as one user message, for engines that read the question
    prompt: str | None = None
    specialist: str = ""  # who asks: one engine may serve several specialists
    adapter: Adapter | None = None  # the LoRA adapter this request runs with, if any
    # the answer's text so far, from a replica that was lost mid-answer: the engine
    # continues after it (as if it had generated it), and counts only the new tokens
    continuation: str = ""
    # the question itself (the last user turn, without system prompt or passages), for
    # engines that read it rather than the model's prompt (the symbolic engine)
    question: str = ""

    @property
    def constrained(self) -> bool:
        """The answer is not one free chat answer: its form is set by the request (a JSON
        format, tools the model may call), it is several (``n``), or it continues a raw
        text (``prompt``)."""
        if (self.tools and self.tool_choice != "none") or self.n > 1 or self.prompt is not None:
            return True
        return self.response_format is not None and self.response_format.get("type") != "text"


@dataclass(frozen=True)
class Chunk:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None = None
    cumulative_logprob: float | None = None  # sum over the completion so far, when requested
    cached_tokens: int = 0  # of the prompt's tokens, those found in the engine's prefix cache
    # how the answer was made, for engines that have more than one way ("" for a model's
    # plain answer): symbolic, program_aided, unverified or refused (specialists.symbolic)
    method: str = ""
    # OpenAI log-probability entries of this chunk's tokens ({"token", "logprob", "bytes",
    # "top_logprobs"}), when the request asks for top_logprobs
    logprobs: list[dict[str, Any]] | None = None
    # OpenAI tool-call deltas of this chunk (index, then id, type and name once, the
    # arguments in pieces), when the model calls tools
    tool_calls: list[dict[str, Any]] | None = None
    index: int = 0  # the choice this chunk belongs to (n > 1); token counts are over all


@dataclass(frozen=True)
class EngineLoad:
    """How busy an engine is, as its scheduler last saw it."""

    running: int = 0  # sequences being generated
    waiting: int = 0  # admitted, not yet scheduled
    kv_cache_usage: float = 0.0  # share of the KV cache in use, 0..1
    prefix_queries: int = 0  # prompt tokens looked up in the prefix cache, since start
    prefix_hits: int = 0  # of those, found there

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


class SpecialistEngine(abc.ABC):
    """One model engine serving one specialist replica."""

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes (no special tokens added)."""

    @abc.abstractmethod
    def count_prompt(self, request: GenerationRequest) -> int:
        """Tokens the request's messages take once rendered by its chat template."""

    @abc.abstractmethod
    def generate(self, request: GenerationRequest) -> AsyncIterator[Chunk]: ...

    @abc.abstractmethod
    async def abort(self, request_id: str) -> None: ...

    @abc.abstractmethod
    def num_unfinished(self) -> int:
        """Requests the engine is still working on (running or waiting)."""

    def load(self) -> EngineLoad:
        """Running and waiting sequences, KV-cache use and prefix-cache counts; an engine
        that knows only its unfinished requests reports them as running."""
        return EngineLoad(running=self.num_unfinished())

    @abc.abstractmethod
    async def check_health(self) -> None: ...

    @abc.abstractmethod
    def shutdown(self) -> None: ...
