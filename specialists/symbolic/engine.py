"""The symbolic engine: SymPy in front of a model engine, behind the same contract.

For each question it tries, in order:

1. ``symbolic``: the question holds a formula (an expression, equations, a derivative,
   an integral, a limit): solved exactly in the worker, answered with its steps.
2. ``program_aided``: no formula (a word problem): the model is asked to write one
   arithmetic expression for it; one whose numbers all come from the question (``program``)
   is evaluated exactly by the worker.
3. ``unverified``: neither gave a number: the model's own answer, streamed as it comes.

Input past a limit, or code, gets ``refused``: a clear refusal naming the limit, in well
under a second. Every chunk says which of these answered (``Chunk.method``). Token
counts are the model's tokenizer's: the prompt, plus the model's own work (the expression
it wrote), plus the answer sent. Log-probabilities, when asked for, say how sure the
answer is: 0 for an exact solve, the expression's own for a program-aided one, the
model's for its own answer, and none for a refusal (so a cascade never accepts one).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from specialists.engine import Chunk, EngineLoad, GenerationRequest, SpecialistEngine
from specialists.errors import ContextLengthError
from specialists.symbolic.limits import Limits
from specialists.symbolic.program import (
    PROGRAM_MAX_TOKENS,
    program_answer,
    program_messages,
    ungrounded,
)
from specialists.symbolic.sandbox import Sandbox

logger = logging.getLogger(__name__)


class SymbolicEngine(SpecialistEngine):
    """Wraps ``inner``, the model engine (already started by its owner, and maybe shared
    with other specialists); starts and stops only its own worker."""

    def __init__(self, inner: SpecialistEngine, limits: Limits | None = None) -> None:
        self.inner = inner
        self.limits = limits or Limits()
        self.sandbox = Sandbox(self.limits)

    async def start(self) -> None:
        await self.sandbox.start()

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def count_prompt(self, request: GenerationRequest) -> int:
        return self.inner.count_prompt(request)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        if request.constrained or request.top_logprobs is not None:
            # the answer's form is the request's (JSON), or each token's log-probability is
            # asked: only the model, constrained by its engine, can give that
            async for chunk in self.inner.generate(request):
                yield chunk
            return
        question = request.question or _last_user(request)
        outcome = await self.sandbox.ask("question", question)
        n_prompt = self.count_prompt(request)
        if outcome.status in ("solved", "refused"):
            method = "symbolic" if outcome.status == "solved" else "refused"
            sure = 0.0 if outcome.status == "solved" else None
            async for chunk in self._say(request, outcome.text, n_prompt, 0, method, sure):
                yield chunk
            return
        used, expression, logprob = await self._ask_for_expression(request, question)
        made_up = ungrounded(expression, question)
        if made_up:  # a number the question does not give: not passed off as exact
            logger.info("expression %r not used: %s not in the question", expression, made_up)
        if expression and not made_up:
            value = await self.sandbox.ask("expression", expression)
            if value.status == "solved":
                text = program_answer(expression, value.result)
                mean = logprob / max(1, used[1])  # how sure the model was of its expression
                async for chunk in self._say(
                    request, text, n_prompt + used[0], used[1], "program_aided", mean
                ):
                    yield chunk
                return
        async for chunk in self._model_answer(request, used, logprob):
            yield chunk

    async def _ask_for_expression(
        self, request: GenerationRequest, question: str
    ) -> tuple[tuple[int, int], str, float]:
        """The model's expression for ``question`` ("" for none), the tokens it took
        (prompt, completion) and their log-probability."""
        ask = GenerationRequest(
            request_id=f"{request.request_id}.program",
            messages=program_messages(question),
            max_tokens=PROGRAM_MAX_TOKENS,
            stop=["\n", *request.stop],
            logprobs=True,
            specialist=request.specialist,
            adapter=request.adapter,
            chat_template=request.chat_template,
        )
        parts: list[str] = []
        last = Chunk("", 0, 0)
        try:
            async for chunk in self.inner.generate(ask):
                parts.append(chunk.text)
                last = chunk
        except ContextLengthError:  # the worked examples do not fit beside the question
            return (0, 0), "", 0.0
        expression = "".join(parts).strip()
        if expression.lower().rstrip(".") in ("none", ""):
            expression = ""
        return (
            (last.prompt_tokens, last.completion_tokens),
            expression,
            float(last.cumulative_logprob or 0.0),
        )

    async def _model_answer(
        self, request: GenerationRequest, used: tuple[int, int], tried: float
    ) -> AsyncIterator[Chunk]:
        """The model's own answer, its counts (and log-probability) including the
        expression it tried first."""
        async for chunk in self.inner.generate(request):
            logprob = chunk.cumulative_logprob
            if logprob is not None:
                logprob += tried
            yield Chunk(
                chunk.text,
                chunk.prompt_tokens + used[0],
                chunk.completion_tokens + used[1],
                chunk.finish_reason,
                logprob,
                chunk.cached_tokens,
                method="unverified",
            )

    async def _say(
        self,
        request: GenerationRequest,
        text: str,
        n_prompt: int,
        spent: int,
        method: str,
        mean_logprob: float | None,
    ) -> AsyncIterator[Chunk]:
        """``text`` streamed line by line, cut to ``max_tokens``; ``spent``: completion
        tokens the model already used for it."""
        cuts = [text.find(s) for s in request.stop if s and s in text]
        if cuts:  # the client's stop strings apply to exact answers too
            text = text[: min(cuts)]
        if request.continuation and text.startswith(request.continuation):
            text = text[len(request.continuation) :]  # a lost replica sent the start
        text, finish = self._fit(text, request.max_tokens)
        lines = text.splitlines(keepends=True) or [""]
        sent = ""
        for i, line in enumerate(lines):
            sent += line
            n = spent + (self.count_tokens(sent) if sent else 0)
            logprob = None
            if request.logprobs and mean_logprob is not None:
                logprob = mean_logprob * n
            last = i == len(lines) - 1
            yield Chunk(line, n_prompt, n, finish if last else None, logprob, method=method)

    def _fit(self, text: str, max_tokens: int) -> tuple[str, str]:
        if self.count_tokens(text) <= max_tokens:
            return text, "stop"
        words = text.split(" ")
        lo, hi = 0, len(words)
        while lo < hi:  # the most words that fit
            mid = (lo + hi + 1) // 2
            if self.count_tokens(" ".join(words[:mid])) <= max_tokens:
                lo = mid
            else:
                hi = mid - 1
        return " ".join(words[:lo]), "length"

    async def abort(self, request_id: str) -> None:
        await self.inner.abort(f"{request_id}.program")
        await self.inner.abort(request_id)

    def num_unfinished(self) -> int:
        return self.inner.num_unfinished()

    def load(self) -> EngineLoad:
        return self.inner.load()

    async def check_health(self) -> None:
        await self.inner.check_health()

    def shutdown(self) -> None:
        self.sandbox.close()


def _last_user(request: GenerationRequest) -> str:
    asked = [m for m in request.messages if m.get("role") == "user"]
    return str(asked[-1].get("content") or "") if asked else ""
