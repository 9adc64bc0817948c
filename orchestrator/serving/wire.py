"""The wire from the gateway to a specialist's engine replica: the OpenAI request as the
engine is to answer it (after routing, grounding and the gateway's limits) inside a small
mixserve envelope (which specialist, its passages, an answer to continue, the trace).

The gateway plans with a payload dict (policies and the cache key read and change it);
``EngineCall.of`` turns it into this model where the call leaves the gateway, validated,
so the replica reads typed fields, and a field one side sends that the other does not
know fails there, not as a silently dropped setting."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WireMessage(_Wire):
    """One chat message, as vLLM's chat layer takes it."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str
    tool_calls: list[dict[str, Any]] | None = None  # an assistant's, echoed back
    tool_call_id: str | None = None  # a tool result's

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class EngineBody(_Wire):
    """The OpenAI request the engine answers: a chat (``messages``) or, with ``prompt``,
    a legacy text completion continuing that raw text (``messages`` then only route)."""

    messages: list[WireMessage] = Field(min_length=1)
    prompt: str | None = None
    max_tokens: int = Field(ge=1)
    temperature: float = Field(0.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    stop: list[str] = Field(default_factory=list)
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    n: int = Field(1, ge=1)


# the envelope's keys in the gateway's payload; every other key is the body's
ENVELOPE = ("request_id", "specialist", "passages", "continuation", "trace", "sent_at")


class EngineCall(_Wire):
    """What a specialist engine replica's ``generate`` takes."""

    body: EngineBody
    request_id: str = Field(min_length=1)
    specialist: str = Field(min_length=1)  # its engine may serve several
    passages: list[tuple[str, str]] = Field(default_factory=list)  # (source, text)
    continuation: str = ""  # the answer so far, when a lost replica's call goes on
    trace: dict[str, str] | None = None  # the caller's span, W3C trace context
    sent_at: float | None = None  # when the gateway sent it (the replica's queue wait)

    @classmethod
    def of(cls, payload: dict[str, Any]) -> EngineCall:
        """The call a gateway payload makes: its (role, text) turns and their
        ``message_fields`` (tool calls, tool call ids) as whole messages."""
        body = {k: v for k, v in payload.items() if k not in ENVELOPE}
        turns = body.pop("messages")
        fields = body.pop("message_fields", None) or [{}] * len(turns)
        body["messages"] = [
            {"role": role, "content": text, **extra}
            for (role, text), extra in zip(turns, fields, strict=True)
        ]
        envelope = {k: payload[k] for k in ENVELOPE if payload.get(k) is not None}
        return cls.model_validate({"body": {k: v for k, v in body.items() if v is not None},
                                   **envelope})  # fmt: skip

    @property
    def messages(self) -> list[dict[str, str]]:
        """The prompt's text in order (the specialist, for its system prompt; the passages;
        the turns): the attribute Ray Serve LLM's request routers read
        (``PrefixCacheAffinityRouter`` matches prefixes on it), so they route ours too."""
        parts = [{"role": "system", "content": self.specialist}]
        parts += [{"role": "user", "content": text} for _, text in self.passages]
        parts += [{"role": m.role, "content": m.content} for m in self.body.messages]
        return parts
