"""Tool calling in a chat request: the tool definitions and choice OpenAI's API takes,
the checks that need the whole request (a ``tool_choice`` naming a function not in
``tools``, a tool message answering no call), and which specialists may answer a request
with tools: those whose engine has a tool parser (``tool_parser`` in config), which
turns the model's text back into calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, field_validator

from orchestrator.errors import APIError
from orchestrator.serving.formats import checked_schema

FUNCTION_NAME = r"^[a-zA-Z0-9_-]{1,64}$"


class FunctionDef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StrictStr = Field(pattern=FUNCTION_NAME)
    description: StrictStr | None = None
    parameters: dict[str, Any] | None = None
    strict: StrictBool | None = None

    @field_validator("parameters")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else checked_schema(value)


class ToolDef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["function"]
    function: FunctionDef


class NamedFunction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StrictStr


class NamedToolChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["function"]
    function: NamedFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class FunctionCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StrictStr
    arguments: StrictStr


class ToolCall(BaseModel):
    """A call an assistant message made (a client echoes it back with the results)."""

    model_config = ConfigDict(extra="forbid")

    id: StrictStr = Field(min_length=1, max_length=256)
    type: Literal["function"]
    function: FunctionCall


def check_tools(
    tools: Sequence[ToolDef] | None,
    choice: ToolChoice | None,
    messages: Sequence[Any],
) -> None:
    """A 400 naming the parameter when the request's tool parts do not fit together."""
    names = [t.function.name for t in tools or ()]
    if len(set(names)) != len(names):
        raise APIError(400, "two tools share a name", param="tools", code="invalid_value")
    if isinstance(choice, NamedToolChoice) and choice.function.name not in names:
        raise APIError(
            400,
            f"tool_choice names the function {choice.function.name!r}, which is not in tools",
            param="tool_choice",
            code="invalid_value",
        )
    if choice in ("required",) and not names:
        raise APIError(
            400, "tool_choice 'required' needs tools", param="tool_choice", code="invalid_value"
        )
    called: set[str] = set()
    for i, m in enumerate(messages):
        for call in m.tool_calls or ():
            called.add(call.id)
        if m.role == "tool":
            if m.tool_call_id is None:
                raise APIError(
                    400,
                    "a tool message needs the tool_call_id of the call it answers",
                    param=f"messages[{i}].tool_call_id",
                    code="missing_required_parameter",
                )
            if m.tool_call_id not in called:
                raise APIError(
                    400,
                    f"messages[{i}] answers the tool call {m.tool_call_id!r}, which no "
                    "earlier assistant message made",
                    param=f"messages[{i}].tool_call_id",
                    code="invalid_value",
                )


def calls_tools(extras: Mapping[str, Any]) -> bool:
    """Whether a request's sampling extras ask for tools the model may call."""
    return bool(extras.get("tools")) and extras.get("tool_choice") != "none"


def tool_specialist(
    routing: Mapping[str, Any], able: Iterable[str], pinned: str | None
) -> tuple[str, str]:
    """The specialist that answers a request with tools, and why: the pinned one if it
    can call tools (else a 400), else the router's choice if it can, else the best-ranked
    one that can (by utility, else score)."""
    able = set(able)
    if not able:
        raise APIError(
            400,
            "no specialist of this service can call tools (none has a tool_parser)",
            param="tools",
            code="invalid_value",
        )
    if pinned is not None:
        if pinned not in able:
            raise APIError(
                400,
                f"the specialist {pinned!r} cannot call tools (its engine has no "
                f"tool_parser); these can: {', '.join(sorted(able))}",
                param="tools",
                code="invalid_value",
            )
        return pinned, ""
    choice = str(routing["choice"])
    if choice in able:
        return choice, ""
    ranking = routing.get("utilities") or routing.get("scores") or {}
    best = sorted(able, key=lambda n: (-float(ranking.get(n, float("-inf"))), n))[0]
    return best, f"; tools: {choice} cannot call them, {best} (the best that can) answers"
