"""A deterministic stand-in engine for tests of everything around the model.

It answers ``[<specialist>] <the last line of the last user message>`` word by word
(the specialist the request names, else the engine's; ``[<specialist>+<adapter>]`` when
it runs with a LoRA adapter, which must be one the engine was built with; after the
words a lost replica already sent, given as ``continuation``), with a
configurable delay and log-probability per token (so tests can make a specialist look
unsure and drive a cascade; with ``top_logprobs`` each word's OpenAI log-probability entry,
its alternatives the word upper-cased and then numbered), counts whitespace tokens
(with ``answer_tokens``, the answer's words repeated to exactly that many: a benchmark's
fixed-length answers),
honours ``max_tokens`` and the context limit, and records aborted request ids so tests
can see that aborts arrive.
Given tools (and a tool_choice other than none), it calls the named tool, else the
first, with ``{"query": <that line>}`` unless the last message is a tool's result, which
it then echoes as its answer. With ``n`` above 1 it interleaves n choices, choice k's
first word ``[<specialist>#k]``. Every test that uses it is matched by an e2e test against
the real vLLM engine.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from specialists.engine import Adapter, Chunk, GenerationRequest, SpecialistEngine
from specialists.errors import ContextLengthError, EngineUnhealthyError


class FakeEngine(SpecialistEngine):
    def __init__(
        self,
        name: str,
        max_model_len: int,
        token_delay_s: float = 0.0,
        start_delay_s: float = 0.0,
        token_logprob: float = -0.1,
        adapters: list[Adapter] | None = None,
        answer_tokens: int = 0,
    ) -> None:
        self.name = name
        self.adapters = {a.name: a for a in adapters or []}
        self.token_logprob = token_logprob
        self.max_model_len = max_model_len
        self.token_delay_s = token_delay_s
        self.start_delay_s = start_delay_s
        self.answer_tokens = answer_tokens
        self.aborted: list[str] = []
        self.started = False
        self.running: set[str] = set()

    async def start(self) -> None:
        await asyncio.sleep(self.start_delay_s)
        self.started = True

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def count_prompt(self, request: GenerationRequest) -> int:
        if request.prompt is not None:
            return self.count_tokens(request.prompt)
        return sum(len(str(m.get("content") or "").split()) for m in request.messages)

    def _answer_words(self, request: GenerationRequest) -> list[str]:
        asked = [m for m in request.messages if m.get("role") in ("user", "tool")]
        text = str(asked[-1].get("content") or "") if asked else ""
        if request.prompt is not None:  # a raw text prompt: its last line
            text = request.prompt
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        subject = lines[-1] if lines else ""
        who = request.specialist or self.name
        if request.adapter is not None:
            who += f"+{request.adapter.name}"
        words = f"[{who}] {subject}".split()
        if self.answer_tokens:  # a fixed length: the question's words again and again
            words = (words * (self.answer_tokens // len(words) + 1))[: self.answer_tokens]
        return words

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        if not self.started:
            raise EngineUnhealthyError("engine not started")
        if (
            request.adapter is not None
            and self.adapters.get(request.adapter.name) != request.adapter
        ):
            raise ValueError(f"LoRA adapter {request.adapter.name!r} is not loaded")
        n_prompt = self.count_prompt(request)
        if n_prompt + request.max_tokens > self.max_model_len:
            raise ContextLengthError(
                f"the prompt is {n_prompt} tokens and max_tokens is {request.max_tokens}, "
                f"more than the model's context of {self.max_model_len} tokens"
            )
        last = request.messages[-1].get("role") if request.messages else None
        if request.tools and request.tool_choice != "none" and last != "tool":
            for chunk in self._call(request, n_prompt):
                yield chunk
            return
        done = len(request.continuation.split())  # words a lost replica already sent
        words = self._answer_words(request)[done:][: request.max_tokens]
        finish = "length" if len(words) == request.max_tokens else "stop"
        self.running.add(request.request_id)
        produced = 0  # over every choice, as engines count completion tokens
        try:
            for i, word in enumerate(words):
                if self.token_delay_s:
                    await asyncio.sleep(self.token_delay_s)
                last = i == len(words) - 1
                logprob = (i + 1) * self.token_logprob if request.logprobs else None
                for choice in range(request.n):
                    # choice k > 0 of n names itself: [general#k]
                    said = word if i or not choice else f"{word[:-1]}#{choice}]"
                    text = ("" if i == 0 and not done else " ") + said
                    entries = _entries(text, request.top_logprobs, self.token_logprob)
                    produced += 1
                    yield Chunk(
                        text, n_prompt, produced, finish if last else None, logprob,
                        logprobs=entries, index=choice,
                    )  # fmt: skip
            if not words:
                yield Chunk("", n_prompt, 0, "stop", 0.0 if request.logprobs else None)
        except (asyncio.CancelledError, GeneratorExit):
            await self.abort(request.request_id)
            raise
        finally:
            self.running.discard(request.request_id)

    def _call(self, request: GenerationRequest, n_prompt: int) -> list[Chunk]:
        """One call of the named tool (else the first), its arguments the question, in
        two deltas as vLLM streams them; ``finish_reason`` tool_calls."""
        choice = request.tool_choice
        tools = request.tools or []
        if isinstance(choice, dict):
            name = str(choice["function"]["name"])
        else:
            name = str(tools[0]["function"]["name"])
        subject = " ".join(self._answer_words(request)[1:])
        arguments = json.dumps({"query": subject})
        cut = len(arguments) // 2
        head = {"index": 0, "id": f"call_{request.request_id}", "type": "function",
                "function": {"name": name, "arguments": arguments[:cut]}}  # fmt: skip
        tail = {"index": 0, "function": {"arguments": arguments[cut:]}}
        return [
            Chunk("", n_prompt, 1, None, tool_calls=[head]),
            Chunk("", n_prompt, 2, "tool_calls", tool_calls=[tail]),
        ]

    async def abort(self, request_id: str) -> None:
        self.aborted.append(request_id)

    def num_unfinished(self) -> int:
        return len(self.running)

    async def check_health(self) -> None:
        if not self.started:
            raise EngineUnhealthyError("engine not started")

    def shutdown(self) -> None:
        self.started = False


def _entries(token: str, top: int | None, logprob: float) -> list[dict[str, object]] | None:
    """The OpenAI log-probability entry of one fake token, with ``top`` alternatives."""
    if top is None:
        return None

    def entry(text: str, value: float) -> dict[str, object]:
        return {"token": text, "logprob": value, "bytes": list(text.encode())}

    alternatives = [entry(token, logprob)]
    alternatives += [entry(f"{token.upper()}{i}", logprob - i) for i in range(1, top)]
    return [{**entry(token, logprob), "top_logprobs": alternatives[:top]}]
