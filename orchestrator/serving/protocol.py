"""The HTTP API's protocol: request schemas (OpenAI chat completions and mixserve's own
``/v1/query``) and the builders of OpenAI-format bodies and server-sent events.

Every OpenAI parameter mixserve does not honour is refused with a 400 naming it (never
accepted and ignored): an unknown one as ``unknown_parameter``, a known one it does not
implement yet (tools, ``n`` above 1, audio, ...) as ``unsupported_parameter`` unless its
value is the neutral one (``"tools": []``, ``null``, ...). What it honours (sampling,
penalties, ``logit_bias``, ``logprobs`` and ``top_logprobs``, ``response_format``) the
specialist's engine carries out with vLLM's own serving layer.
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from orchestrator.errors import APIError
from orchestrator.serving.formats import ResponseFormat
from orchestrator.serving.tools import ToolCall, ToolChoice, ToolDef

# OpenAI parameters mixserve does not implement: the values that ask for nothing (and so
# may be sent), and what to tell a client that sends another
UNSUPPORTED: dict[str, tuple[tuple[object, ...], str]] = {
    "functions": ((None, []), "function calling is not supported"),
    "function_call": ((None, "none"), "function calling is not supported"),
    "audio": ((None,), "audio output is not supported"),
    "modalities": ((None, ["text"]), "only text output is supported"),
    "prediction": ((None,), "predicted outputs are not supported"),
    "reasoning_effort": ((None,), "reasoning effort is not supported"),
    "verbosity": ((None,), "verbosity is not supported"),
    "web_search_options": ((None,), "web search is not supported"),
    "service_tier": ((None, "auto", "default"), "service tiers are not offered"),
    "store": ((None, False), "completions are not stored"),
    "metadata": ((None, {}), "completions are not stored, so metadata has no use"),
}
# fields of messages a client may echo back from an earlier response
MESSAGE_UNSUPPORTED: dict[str, tuple[tuple[object, ...], str]] = {
    "function_call": ((None,), "function calling is not supported"),
    "audio": ((None,), "audio is not supported"),
}


def _is_neutral(value: object, neutral: tuple[object, ...]) -> bool:
    for n in neutral:
        if n is None or isinstance(n, bool) or isinstance(value, bool):
            if value is n or (type(value) is type(n) and value == n):
                return True
        elif value == n:  # 0 and 0.0 alike, lists and objects by value
            return True
    return False


def without_unsupported(
    table: dict[str, tuple[tuple[object, ...], str]], data: dict[str, Any], where: str = ""
) -> dict[str, Any]:
    """``data`` without the unsupported parameters it sends at their neutral values; a
    400 naming the first one it sends at another."""
    for name, (neutral, why) in table.items():
        if name in data and not _is_neutral(data[name], neutral):
            raise APIError(
                400,
                f"'{where}{name}' is not supported by this service ({why}); remove it",
                param=f"{where}{name}",
                code="unsupported_parameter",
            )
    return {k: v for k, v in data.items() if k not in table}


def refuse_unsupported(data: Any) -> Any:
    """A chat request's raw body, checked against ``UNSUPPORTED`` (and each message
    against ``MESSAGE_UNSUPPORTED``) before its schema is: the table is the one place
    these parameters are named, and the schema itself lists only what is honoured."""
    if not isinstance(data, dict):
        return data
    body = without_unsupported(UNSUPPORTED, data)
    messages = body.get("messages")
    if isinstance(messages, list):
        body["messages"] = [
            without_unsupported(MESSAGE_UNSUPPORTED, m, f"messages[{i}].")
            if isinstance(m, dict)
            else m
            for i, m in enumerate(messages)
        ]
    return body


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[dict[str, object]] | None = None
    name: str | None = Field(None, max_length=256)
    refusal: str | None = None  # an assistant message echoed back from a response
    annotations: list[Any] | None = None  # likewise
    tool_call_id: str | None = Field(None, max_length=256)
    tool_calls: list[ToolCall] | None = Field(None, max_length=128)  # an assistant's calls

    def text(self) -> str:
        """Plain text of the message (text parts of a multi-part content joined)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        parts = []
        for part in self.content:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ValueError("only text content parts are supported")
            parts.append(str(part["text"]))
        return "".join(parts)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_usage: StrictBool = False


class CascadeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_mean_logprob: float | None = Field(None, le=0, ge=-100)
    min_quality: float | None = Field(None, ge=0, le=1)


class EnsembleOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    top_k: StrictInt | None = Field(None, ge=2, le=8)


class MixserveOptions(BaseModel):
    """mixserve's own request options, under the ``mixserve`` key of the body."""

    model_config = ConfigDict(extra="forbid")

    quality_cost_tradeoff: float | None = Field(
        None, ge=0, le=1000, description="lambda of the router's quality - lambda x cost."
    )
    policy: str | None = Field(None, description="Answer policy: single, cascade or ensemble.")
    cascade: CascadeOptions | None = None
    ensemble: EnsembleOptions | None = None
    balance: StrictBool = Field(
        True,
        description="false: the router's first choice answers or the request is refused "
        "(no joint reassignment, no spill-over, no wait for a slot).",
    )

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, value: str | None) -> str | None:
        from orchestrator.policies import policy_names

        if value is not None and value not in policy_names():
            raise ValueError(f"unknown policy {value!r}; known: {', '.join(policy_names())}")
        return value


class ChatCompletionRequest(BaseModel):
    """The OpenAI fields mixserve honours; any other is refused (see the module doc)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: StrictInt | None = Field(None, ge=1)
    max_completion_tokens: StrictInt | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    n: StrictInt = Field(1, ge=1, le=128)  # and at most the gateway's max_n
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: StrictInt | None = Field(None, ge=-(2**63), lt=2**63)  # OpenAI's: a 64-bit int
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = Field(None, max_length=300)
    logprobs: StrictBool | None = None
    top_logprobs: StrictInt | None = Field(None, ge=0, le=20)
    response_format: ResponseFormat | None = None
    tools: list[ToolDef] | None = Field(None, max_length=128)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: StrictBool | None = None
    user: str | None = Field(None, max_length=256)  # the end user, for the caller's records
    mixserve: MixserveOptions | None = None

    @model_validator(mode="before")
    @classmethod
    def _unsupported(cls, data: Any) -> Any:
        return refuse_unsupported(data)

    @field_validator("logit_bias")
    @classmethod
    def _bias(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for token, bias in (value or {}).items():
            if not token.isdigit():
                raise ValueError(f"keys are token ids, not {token!r}")
            if not -100 <= bias <= 100:
                raise ValueError(f"the bias of token {token} is {bias}, outside -100..100")
        return value

    @field_validator("top_logprobs")
    @classmethod
    def _top_logprobs_needs_logprobs(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and not info.data.get("logprobs"):
            raise ValueError("top_logprobs needs logprobs: true")
        return value

    def sampling_extras(self) -> dict[str, Any]:
        """What the request asks of the engine beyond mixserve's own sampling fields
        (penalties, bias, per-token log-probabilities, the answer's format): only those
        set, so that a plain request's payload (and cache key) stays as it was."""
        extras: dict[str, Any] = {
            "presence_penalty": self.presence_penalty or None,
            "frequency_penalty": self.frequency_penalty or None,
            "logit_bias": self.logit_bias or None,
            "top_logprobs": (self.top_logprobs or 0) if self.logprobs else None,
            "response_format": self.response_format.for_engine() if self.response_format else None,
            "tools": [t.model_dump(exclude_none=True) for t in self.tools] if self.tools else None,
            "tool_choice": (
                self.tool_choice.model_dump()
                if isinstance(self.tool_choice, BaseModel)
                else self.tool_choice
            ),
            "parallel_tool_calls": self.parallel_tool_calls,
            "message_fields": message_fields(self.messages),
            "n": self.n if self.n > 1 else None,
        }
        return {k: v for k, v in extras.items() if v is not None}

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


# how each OpenAI role reaches a prompt template (which knows system, user, assistant)
ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "tool": "tool",
    "assistant": "assistant",
}


def conversation(body: ChatCompletionRequest) -> list[tuple[str, str]]:
    """The request's messages as (role, text) pairs; a 400 for content mixserve cannot
    read (a part that is not text)."""
    try:
        return [(ROLES[m.role], m.text()) for m in body.messages]
    except ValueError as exc:
        raise APIError(400, str(exc), param="messages", code="invalid_value") from None


def message_fields(messages: list[ChatMessage]) -> list[dict[str, Any]] | None:
    """What messages carry beside their text, by position (an assistant's ``tool_calls``,
    a tool result's ``tool_call_id``); None when no message carries anything."""
    fields: list[dict[str, Any]] = []
    for m in messages:
        extra: dict[str, Any] = {}
        if m.tool_calls:
            extra["tool_calls"] = [c.model_dump() for c in m.tool_calls]
        if m.role == "tool" and m.tool_call_id is not None:
            extra["tool_call_id"] = m.tool_call_id
        fields.append(extra)
    return fields if any(fields) else None


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=100_000)
    model: str = "auto"
    max_tokens: StrictInt | None = Field(None, ge=1)
    temperature: float = Field(0.0, ge=0, le=2)
    retrieval: StrictBool = True
    mixserve: MixserveOptions | None = None


# a question, not a document: about the encoder's window (256 tokens), past which its
# words would not be embedded
SEARCH_QUERY_CHARS = 1000


class SearchRequest(BaseModel):
    """``POST /v1/retrieval/search``: one collection's best passages for a query."""

    model_config = ConfigDict(extra="forbid")

    collection: StrictStr = Field(min_length=1, max_length=128)
    query: StrictStr = Field(min_length=1, max_length=SEARCH_QUERY_CHARS)
    top_k: StrictInt = Field(5, ge=1, le=100)
    min_score: StrictFloat = Field(-1.0, ge=-1, le=1)

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("query is blank")
        return value


# ---- response bodies ---------------------------------------------------------------
def usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> dict[str, Any]:
    """OpenAI's usage object; ``prompt_tokens_details.cached_tokens``: prompt tokens the
    engines found in their prefix caches (computed before, not again)."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
    }


def logprobs_of(entries: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """A choice's ``logprobs`` object: its tokens' entries, when they were asked for."""
    return None if entries is None else {"content": entries, "refusal": None}


def choice(
    index: int,
    text: str,
    finish_reason: str | None,
    logprobs: list[dict[str, Any]] | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:  # the calls the model made (its text, if any, beside them)
        message = {**message, "content": text or None, "tool_calls": tool_calls}
    return {
        "index": index,
        "message": message,
        "finish_reason": finish_reason or "stop",
        "logprobs": logprobs_of(logprobs),
    }


def completion(
    request_id: str,
    model: str,
    text: str,
    finish_reason: str | None,
    usage: dict[str, Any],
    meta: dict[str, Any],
    logprobs: list[dict[str, Any]] | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    more: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A chat completion; ``more``: the choices after the first (``n``), each already
    built by ``choice``."""
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice(0, text, finish_reason, logprobs, tool_calls), *(more or [])],
        "usage": usage,
        "mixserve": meta,
    }


def chunk(
    request_id: str,
    model: str,
    created: int,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    extra: dict[str, Any] | None = None,
    logprobs: list[dict[str, Any]] | None = None,
    index: int = 0,
) -> dict[str, Any]:
    one = {
        "index": index,
        "delta": delta,
        "finish_reason": finish_reason,
        "logprobs": logprobs_of(logprobs),
    }
    body: dict[str, Any] = {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [one],
    }
    if extra:
        body.update(extra)
    return body


def model_list(entries: list[tuple[str, str]]) -> dict[str, Any]:
    """``GET /v1/models``: (id, description) pairs as OpenAI model objects."""
    data = [
        {"id": name, "object": "model", "created": 0, "owned_by": "mixserve", "description": d}
        for name, d in entries
    ]
    return {"object": "list", "data": data}


def sse(data: dict[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()
