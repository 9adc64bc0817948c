"""``POST /v1/completions``: OpenAI's legacy text completions, routed like chat (the
router reads the prompt; a specialist name pins one), the prompt continued as it is by
the specialist's engine (vLLM's ``OpenAIServingCompletion``): no chat template, no system
prompt and no retrieved passages, since a raw prompt has no place for them.

What the legacy API has and mixserve does not do (a batch of prompts, token-id prompts,
``echo``, ``suffix``, ``best_of`` other than ``n``) is refused by name.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi.responses import JSONResponse, Response
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from orchestrator.serving.answering import Answering
from orchestrator.serving.http import event_stream
from orchestrator.serving.plan import Plan
from orchestrator.serving.protocol import (
    MixserveOptions,
    StreamOptions,
    refuse_unsupported,
    without_unsupported,
)

# parameters of the legacy API mixserve does not implement, and their neutral values
UNSUPPORTED: dict[str, tuple[tuple[object, ...], str]] = {
    "echo": ((None, False), "the prompt is not echoed back"),
    "suffix": ((None, ""), "completions with a suffix (insertion) are not supported"),
}


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    prompt: StrictStr | list[StrictStr] = Field(description="One prompt (a list of one).")
    max_tokens: StrictInt | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    n: StrictInt = Field(1, ge=1, le=128)
    best_of: StrictInt | None = Field(None, ge=1, le=128)
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: StrictInt | None = Field(None, ge=-(2**63), lt=2**63)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = Field(None, max_length=300)
    logprobs: StrictInt | None = Field(None, ge=0, le=5)
    user: str | None = Field(None, max_length=256)
    mixserve: MixserveOptions | None = None

    @model_validator(mode="before")
    @classmethod
    def _unsupported(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return refuse_unsupported(without_unsupported(UNSUPPORTED, data))

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str | list[str]:
        prompts = [value] if isinstance(value, str) else value
        if len(prompts) != 1:
            raise ValueError("send one prompt a request (batches of prompts are not supported)")
        if not prompts[0].strip():
            raise ValueError("the prompt is blank")
        return value

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    @field_validator("best_of")
    @classmethod
    def _best_of_is_n(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and value != info.data.get("n", 1):
            raise ValueError("best_of other than n is not supported (every choice is returned)")
        return value

    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]

    def sampling(self) -> dict[str, Any]:
        """The engine's sampling fields (only those set) beside mixserve's own."""
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        extras = {
            "presence_penalty": self.presence_penalty or None,
            "frequency_penalty": self.frequency_penalty or None,
            "logit_bias": self.logit_bias or None,
            "top_logprobs": self.logprobs,
            "n": self.n if self.n > 1 else None,
            "prompt": self.text(),
        }
        basic = {"temperature": self.temperature, "top_p": self.top_p, "stop": stop}
        return {**basic, "seed": self.seed, **{k: v for k, v in extras.items() if v is not None}}


def text_logprobs(entries: list[dict[str, Any]] | None, offset: int) -> dict[str, Any] | None:
    """Chat log-probability entries in the legacy form: parallel lists, offsets counted
    from ``offset`` characters into the choice's text."""
    if entries is None:
        return None
    offsets, at = [], offset
    for e in entries:
        offsets.append(at)
        at += len(e["token"])
    return {
        "tokens": [e["token"] for e in entries],
        "token_logprobs": [e["logprob"] for e in entries],
        "top_logprobs": [{t["token"]: t["logprob"] for t in e["top_logprobs"]} for e in entries],
        "text_offset": offsets,
    }


def text_choice(
    index: int, text: str, finish_reason: str | None, entries: list[dict[str, Any]] | None
) -> dict[str, Any]:
    return {
        "index": index,
        "text": text,
        "finish_reason": finish_reason or "stop",
        "logprobs": text_logprobs(entries, 0),
    }


def text_completion(
    cid: str, model: str, choices: list[dict[str, Any]], usage: dict[str, Any], meta: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage,
        "mixserve": meta,
    }


class TextShape:
    """Streamed legacy completions: ``text_completion`` chunks, each choice's text and
    (asked for) its tokens' log-probabilities with offsets into that choice's text."""

    prefix = "cmpl"

    def __init__(self) -> None:
        self.offsets: dict[int, int] = {}

    def opening(self) -> dict[str, Any]:
        return {"content": ""}

    def chunk(
        self,
        cid: str,
        model: str,
        created: int,
        delta: dict[str, Any],
        finish_reason: str | None = None,
        extra: dict[str, Any] | None = None,
        logprobs: list[dict[str, Any]] | None = None,
        index: int = 0,
    ) -> dict[str, Any]:
        text = str(delta.get("content") or "")
        at = self.offsets.get(index, 0)
        self.offsets[index] = at + len(text)
        choice = {
            "index": index,
            "text": text,
            "finish_reason": finish_reason,
            "logprobs": text_logprobs(logprobs, at),
        }
        body: dict[str, Any] = {
            "id": cid,
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [choice],
        }
        return {**body, **(extra or {})}


async def answer_text(answering: Answering, plan: Plan, body: CompletionRequest) -> Response:
    """The planned completion, whole or as server-sent events."""
    per_token = body.logprobs is not None
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        events = await answering.events(plan, include_usage, per_token, TextShape())
        return event_stream(events, plan.headers)
    answer, usage = await answering.complete(plan)
    choices = [
        text_choice(i, "".join(a.parts), a.finish_reason, a.logprobs if per_token else None)
        for i, a in answer.choices()
    ]
    out = text_completion(f"cmpl-{plan.request_id}", plan.specialist, choices, usage, plan.meta)
    return JSONResponse(out, headers=plan.headers)
