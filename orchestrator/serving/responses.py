"""``POST /v1/responses``: OpenAI's Responses API (what newer SDKs and agent frameworks
default to). ``instructions`` and ``input`` (a text, or items: messages whose content is
text or text parts, the ``function_call`` items of an earlier answer and the
``function_call_output`` items answering them) become a chat conversation; function
``tools``, ``tool_choice``, ``parallel_tool_calls`` and ``text.format`` (``json_object``,
``json_schema``) become chat's; the request is then checked, routed and answered as
chat is (the specialist's engine, its chat template and tool parser, retrieval,
policies, cost, traces), and the answer comes back as a ``response`` object or its
streamed events (``orchestrator.serving.responses_output``).

What it does not do is refused by name: tools other than functions,
``previous_response_id`` and stored responses (nothing is stored), reasoning,
``include``, background runs.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi.responses import JSONResponse, Response
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    Tag,
    field_validator,
)

from orchestrator.serving.answering import Answering
from orchestrator.serving.http import event_stream
from orchestrator.serving.plan import Plan
from orchestrator.serving.protocol import MixserveOptions, without_unsupported
from orchestrator.serving.responses_output import (
    ResponseShape,
    output_items,
    response_object,
    status_of,
)

UNSUPPORTED: dict[str, tuple[tuple[object, ...], str]] = {
    "previous_response_id": ((None,), "responses are not stored; send the whole input"),
    "conversation": ((None,), "responses are not stored; send the whole input"),
    "store": ((None, False), "responses are not stored"),
    "background": ((None, False), "background responses are not supported"),
    "reasoning": ((None,), "reasoning options are not supported"),
    "include": ((None, []), "no extra output can be included"),
    "prompt": ((None,), "stored prompt templates are not supported"),
    "truncation": ((None, "disabled"), "the input is never truncated"),
    "max_tool_calls": ((None,), "a bound on tool calls is not supported"),
    "top_logprobs": ((None, 0), "log-probabilities are served on /v1/chat/completions"),
    "metadata": ((None, {}), "responses are not stored, so metadata has no use"),
    "service_tier": ((None, "auto", "default"), "service tiers are not offered"),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextPart(_Strict):
    type: Literal["input_text", "output_text"]
    text: StrictStr
    annotations: list[Any] | None = None  # an output part echoed back
    logprobs: list[Any] | None = None  # likewise


def _text(content: str | list[TextPart]) -> str:
    return content if isinstance(content, str) else "".join(p.text for p in content)


class InputMessage(_Strict):
    type: Literal["message"] | None = None
    role: Literal["user", "system", "developer", "assistant"]
    content: StrictStr | list[TextPart]
    id: StrictStr | None = None  # an output message echoed back
    status: StrictStr | None = None


class FunctionCallItem(_Strict):
    """A function call of an earlier answer, echoed back before its output."""

    type: Literal["function_call"]
    call_id: StrictStr = Field(min_length=1, max_length=256)
    name: StrictStr = Field(min_length=1, max_length=64)
    arguments: StrictStr
    id: StrictStr | None = None
    status: StrictStr | None = None


class FunctionCallOutputItem(_Strict):
    """What the caller's function returned, for the call ``call_id``."""

    type: Literal["function_call_output"]
    call_id: StrictStr = Field(min_length=1, max_length=256)
    output: StrictStr | list[TextPart]
    id: StrictStr | None = None
    status: StrictStr | None = None


def _tagged(what: str, default: str = "") -> Any:
    """A discriminator reading ``type`` (``default`` when absent), its tag ``<type> <what>``:
    with a space, so that errors, which leave such tags out, name only the parameter."""

    def tag(value: Any) -> str:
        kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
        return f"{kind or default} {what}"

    return Discriminator(tag)


InputItem = Annotated[
    Annotated[InputMessage, Tag("message item")]
    | Annotated[FunctionCallItem, Tag("function_call item")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output item")],
    _tagged("item", default="message"),
]


class FunctionTool(_Strict):
    type: Literal["function"]  # web search, files, computers: not here
    name: StrictStr = Field(min_length=1, max_length=64)
    description: StrictStr | None = None
    parameters: dict[str, Any] | None = None
    strict: StrictBool | None = None

    def as_chat(self) -> dict[str, Any]:
        function = self.model_dump(exclude={"type"}, exclude_none=True)
        return {"type": "function", "function": function}


class FunctionChoice(_Strict):
    type: Literal["function"]
    name: StrictStr = Field(min_length=1, max_length=64)


class PlainText(_Strict):
    type: Literal["text"]


class JsonObject(_Strict):
    type: Literal["json_object"]


class JsonSchemaFormat(_Strict):
    type: Literal["json_schema"]
    name: StrictStr = Field(min_length=1, max_length=64)
    schema_: dict[str, Any] = Field(alias="schema")
    strict: StrictBool | None = None
    description: StrictStr | None = None


TextFormat = Annotated[
    Annotated[PlainText, Tag("text format")]
    | Annotated[JsonObject, Tag("json_object format")]
    | Annotated[JsonSchemaFormat, Tag("json_schema format")],
    _tagged("format"),
]


class TextOptions(_Strict):
    format: TextFormat | None = None
    verbosity: Literal["medium"] | None = None


class ResponsesRequest(_Strict):
    model: StrictStr = Field(min_length=1)
    input: list[InputItem] = Field(min_length=1, description="A text, or items.")
    instructions: StrictStr | None = None
    max_output_tokens: StrictInt | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    stream: StrictBool = False
    tools: list[FunctionTool] | None = Field(None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | FunctionChoice | None = None
    parallel_tool_calls: StrictBool | None = None
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

    def messages(self) -> list[dict[str, Any]]:
        """The input as chat messages: instructions first, as the system's; a run of
        function calls on one assistant message; each output as a tool message."""
        out: list[dict[str, Any]] = []
        if self.instructions:
            out.append({"role": "system", "content": self.instructions})
        for item in self.input:
            if isinstance(item, InputMessage):
                out.append({"role": item.role, "content": _text(item.content)})
            elif isinstance(item, FunctionCallItem):
                call = {
                    "id": item.call_id,
                    "type": "function",
                    "function": {"name": item.name, "arguments": item.arguments},
                }
                last = out[-1] if out else None
                if last is not None and last["role"] == "assistant":
                    last.setdefault("tool_calls", []).append(call)
                else:
                    out.append({"role": "assistant", "content": None, "tool_calls": [call]})
            else:
                out.append(
                    {"role": "tool", "tool_call_id": item.call_id, "content": _text(item.output)}
                )
        return out

    def chat_body(self) -> dict[str, Any]:
        """The chat completion request this one asks for (its length bound apart)."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": self.messages(),
            "temperature": self.temperature,
            "top_p": self.top_p,
        }
        if self.tools:
            body["tools"] = [t.as_chat() for t in self.tools]
        choice = self.tool_choice
        if isinstance(choice, FunctionChoice):
            body["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
        elif choice is not None:
            body["tool_choice"] = choice
        if self.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = self.parallel_tool_calls
        form = self.text.format if self.text else None
        if isinstance(form, JsonObject):
            body["response_format"] = {"type": "json_object"}
        elif isinstance(form, JsonSchemaFormat):
            schema = form.model_dump(by_alias=True, exclude={"type"}, exclude_none=True)
            body["response_format"] = {"type": "json_schema", "json_schema": schema}
        return body

    def echoed(self) -> dict[str, Any]:
        """The tool and format settings a ``response`` object repeats."""
        form = self.text.format if self.text and self.text.format else PlainText(type="text")
        return {
            "tools": [t.model_dump(exclude_none=True) for t in self.tools or []],
            "tool_choice": (
                self.tool_choice.model_dump()
                if isinstance(self.tool_choice, FunctionChoice)
                else self.tool_choice or ("auto" if self.tools else "none")
            ),
            "parallel_tool_calls": self.parallel_tool_calls is not False,
            "text": {"format": form.model_dump(by_alias=True, exclude_none=True)},
        }


async def answer_response(answering: Answering, plan: Plan, body: ResponsesRequest) -> Response:
    """The planned answer as a ``response`` object, or as the API's streamed events."""
    if body.stream:
        events = await answering.events(plan, False, False, ResponseShape(body))
        return event_stream(events, plan.headers)
    answer, usage = await answering.complete(plan)
    rid, status = plan.request_id, status_of(answer.finish_reason)
    output = output_items(rid, "".join(answer.parts), answer.tool_calls)
    out = response_object(rid, plan.specialist, status, output, usage, plan.meta, body)
    return JSONResponse(out, headers=plan.headers)
