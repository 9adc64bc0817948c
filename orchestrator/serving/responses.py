"""``POST /v1/responses``: OpenAI's Responses API (what newer SDKs and agent frameworks
default to), for text: ``instructions`` and ``input`` (a text, or messages whose content
is text or text parts) become a chat conversation, routed and answered as chat is (the
specialist's engine, its chat template, retrieval, policies, cost, traces), and the
answer comes back as a ``response`` object with one output message, or as the
Responses API's streamed events.

What this text-only form does not do is refused by name: tools, ``text.format`` other
than text, ``previous_response_id`` and stored responses (nothing is stored), reasoning,
``include``, background runs.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, field_validator

from orchestrator.serving.answering import Answering
from orchestrator.serving.http import event_stream
from orchestrator.serving.plan import Plan
from orchestrator.serving.protocol import MixserveOptions, without_unsupported

UNSUPPORTED: dict[str, tuple[tuple[object, ...], str]] = {
    "tools": ((None, []), "tools are served on /v1/chat/completions, not yet here"),
    "tool_choice": ((None, "none", "auto"), "tools are served on /v1/chat/completions"),
    "parallel_tool_calls": ((None, True, False), "tools are served on /v1/chat/completions"),
    "previous_response_id": ((None,), "responses are not stored; send the whole input"),
    "conversation": ((None,), "responses are not stored; send the whole input"),
    "store": ((None, False), "responses are not stored"),
    "background": ((None, False), "background responses are not supported"),
    "reasoning": ((None,), "reasoning options are not supported"),
    "include": ((None, []), "no extra output can be included"),
    "prompt": ((None,), "stored prompt templates are not supported"),
    "truncation": ((None, "disabled"), "the input is never truncated"),
    "max_tool_calls": ((None,), "tools are served on /v1/chat/completions"),
    "top_logprobs": ((None, 0), "log-probabilities are served on /v1/chat/completions"),
    "metadata": ((None, {}), "responses are not stored, so metadata has no use"),
    "service_tier": ((None, "auto", "default"), "service tiers are not offered"),
}


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["input_text", "output_text"]
    text: StrictStr
    annotations: list[Any] | None = None  # an output part echoed back


class InputMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["message"] | None = None
    role: Literal["user", "system", "developer", "assistant"]
    content: StrictStr | list[TextPart]
    id: StrictStr | None = None  # an output message echoed back
    status: StrictStr | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class TextFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text"]


class TextOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: TextFormat | None = None
    verbosity: Literal["medium"] | None = None


class ResponsesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: StrictStr = Field(min_length=1)
    input: list[InputMessage] = Field(min_length=1, description="A text, or messages.")
    instructions: StrictStr | None = None
    max_output_tokens: StrictInt | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    stream: StrictBool = False
    text: TextOptions | None = None
    user: StrictStr | None = Field(None, max_length=256)
    safety_identifier: StrictStr | None = Field(None, max_length=256)
    mixserve: MixserveOptions | None = None

    @classmethod
    def checked(cls, data: Any) -> Any:
        """The raw body without the unsupported parameters it sends at neutral values (a
        400 naming the first it sends at another); then the schema applies."""
        return without_unsupported(UNSUPPORTED, data) if isinstance(data, dict) else data

    @field_validator("input", mode="before")
    @classmethod
    def _text_is_a_user_message(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value.strip():
                raise ValueError("the input is empty")
            return [{"role": "user", "content": value}]
        return value

    def conversation(self) -> list[tuple[str, str]]:
        """(role, text) pairs, as chat's: instructions first, as the system's."""
        turns = [("system", self.instructions)] if self.instructions else []
        roles = {"developer": "system"}
        return [*turns, *((roles.get(m.role, m.role), m.text()) for m in self.input)]


def response_object(
    rid: str,
    model: str,
    text: str,
    status: str,
    usage: dict[str, Any] | None,
    meta: dict[str, Any] | None,
    body: ResponsesRequest,
) -> dict[str, Any]:
    """A ``response`` object with one output message (none while in progress)."""
    message = {
        "type": "message",
        "id": f"msg_{rid}",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }
    out: dict[str, Any] = {
        "id": f"resp_{rid}",
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": model,
        "output": [message] if status != "in_progress" else [],
        "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "parallel_tool_calls": False,
        "tool_choice": "none",
        "tools": [],
        "text": {"format": {"type": "text"}},
        "error": None,
        "incomplete_details": None,
        "usage": None,
    }
    if status == "incomplete":
        out["incomplete_details"] = {"reason": "max_output_tokens"}
    if usage is not None:
        out["usage"] = {
            "input_tokens": usage["prompt_tokens"],
            "input_tokens_details": {
                "cached_tokens": usage.get("prompt_tokens_details", {}).get("cached_tokens", 0)
            },
            "output_tokens": usage["completion_tokens"],
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage["total_tokens"],
            "cost": usage.get("cost"),
        }
    if meta is not None:
        out["mixserve"] = meta
    return out


def status_of(finish_reason: str | None) -> str:
    return "incomplete" if finish_reason == "length" else "completed"


class ResponseShape:
    """The Responses API's streamed events: ``response.created``, the output message and
    its text part added, one ``response.output_text.delta`` a piece, then the text, part
    and message done and ``response.completed`` with the usage."""

    prefix = "resp"

    def __init__(self, body: ResponsesRequest) -> None:
        self.body = body
        self.text = ""
        self.sequence = 0

    def opening(self) -> dict[str, Any]:
        return {"content": ""}

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        self.sequence += 1
        return {"type": kind, "sequence_number": self.sequence - 1, **fields}

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
    ) -> list[dict[str, Any]]:
        rid = cid.removeprefix("resp-")
        where = {"item_id": f"msg_{rid}", "output_index": 0}
        extra = extra or {}
        if "mixserve" in extra and "usage" not in extra:  # the opening
            started = response_object(
                rid, model, "", "in_progress", None, extra["mixserve"], self.body
            )
            item = {
                "type": "message",
                "id": f"msg_{rid}",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            return [
                self._event("response.created", response=started),
                self._event("response.in_progress", response=started),
                self._event("response.output_item.added", output_index=0, item=item),
                self._event("response.content_part.added", **where, content_index=0, part=part),
            ]
        if "usage" in extra:  # the end: the whole text, then the response
            done = response_object(
                rid,
                model,
                self.text,
                status_of(finish_reason),
                extra["usage"],
                extra.get("mixserve"),
                self.body,
            )
            part = done["output"][0]["content"][0]
            return [
                self._event(
                    "response.output_text.done",
                    **where,
                    content_index=0,
                    text=self.text,
                    logprobs=[],
                ),
                self._event("response.content_part.done", **where, content_index=0, part=part),
                self._event("response.output_item.done", output_index=0, item=done["output"][0]),
                self._event(f"response.{done['status']}", response=done),
            ]
        text = str(delta.get("content") or "")
        if not text:
            return []
        self.text += text
        return [
            self._event(
                "response.output_text.delta", **where, content_index=0, delta=text, logprobs=[]
            )
        ]


async def answer_response(answering: Answering, plan: Plan, body: ResponsesRequest) -> Response:
    """The planned answer as a ``response`` object, or as the API's streamed events."""
    if body.stream:
        events = await answering.events(plan, False, False, ResponseShape(body))
        return event_stream(events, plan.headers)
    answer, usage = await answering.complete(plan)
    text, status = "".join(answer.parts), status_of(answer.finish_reason)
    out = response_object(plan.request_id, plan.specialist, text, status, usage, plan.meta, body)
    return JSONResponse(out, headers=plan.headers)
