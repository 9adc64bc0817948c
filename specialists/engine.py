"""The contract every specialist engine implements, and the request/chunk types it speaks.

An engine is constructed cheaply and synchronously from its config; ``start()`` loads the
model (under a deadline set by the caller); ``generate()`` streams ``Chunk``s whose
``text`` is the new text since the previous chunk and whose token counts (and, when the
request asks for ``logprobs``, the sum of the sampled tokens' log-probabilities) are cumulative;
closing or cancelling a ``generate()`` stream aborts its request inside the engine (a
client that went away), and ``abort()`` stops one explicitly; ``load()`` tells how busy
it is (for replica routing); ``check_health()`` raises when the engine cannot serve;
``shutdown()`` releases processes and memory and is idempotent.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter an engine serves on its base model; ``number`` is unique per engine."""

    name: str
    number: int
    path: str


@dataclass(frozen=True)
class GenerationRequest:
    request_id: str
    prompt: str
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    logprobs: bool = False  # report the sampled tokens' log-probabilities (cascades judge by them)
    specialist: str = ""  # who asks: one engine may serve several specialists
    adapter: Adapter | None = None  # the LoRA adapter this request runs with, if any
    # the answer's text so far, from a replica that was lost mid-answer: the engine
    # continues after it (as if it had generated it), and counts only the new tokens
    continuation: str = ""
    # the question itself (the last user turn, without prompt format or passages), for
    # engines that read it rather than the model's prompt (the symbolic engine)
    question: str = ""


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
    def count_tokens(self, prompt: str) -> int:
        """Tokens ``prompt`` occupies in the context (special tokens included)."""

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
