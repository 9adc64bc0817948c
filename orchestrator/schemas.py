"""Request and response schemas of the HTTP API (OpenAI chat completions + mixserve)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[dict[str, object]] | None = None

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

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, value: str | None) -> str | None:
        from orchestrator.policies import policy_names

        if value is not None and value not in policy_names():
            raise ValueError(f"unknown policy {value!r}; known: {', '.join(policy_names())}")
        return value


class ChatCompletionRequest(BaseModel):
    """The OpenAI fields mixserve honours; unknown fields are ignored like OpenAI's SDKs send."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: StrictInt | None = Field(None, ge=1)
    max_completion_tokens: StrictInt | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    n: StrictInt = Field(1, ge=1, le=1)
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: StrictInt | None = None
    user: str | None = None
    mixserve: MixserveOptions | None = None

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


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=100_000)
    model: str = "auto"
    max_tokens: StrictInt | None = Field(None, ge=1)
    temperature: float = Field(0.0, ge=0, le=2)
    retrieval: StrictBool = True
    mixserve: MixserveOptions | None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None
