"""Which specialist answers a request with tools, and the checks that need the whole
request: a pinned specialist without a tool parser is a 400, a routed request goes to
the best-ranked specialist that has one; a tool_choice naming no tool, a tool result of
no call, two tools of one name are 400s naming the parameter; deltas add up to calls."""

from __future__ import annotations

import pytest

from orchestrator.errors import APIError
from orchestrator.serving.plan import add_call
from orchestrator.serving.protocol import ChatCompletionRequest
from orchestrator.serving.tools import calls_tools, check_tools, tool_specialist

ROUTING = {"choice": "math", "utilities": {"math": 0.9, "code": 0.5, "general": 0.7}}


def test_the_routers_choice_stands_when_it_can_call_tools():
    assert tool_specialist(ROUTING, {"math", "code"}, None) == ("math", "")


def test_otherwise_the_best_ranked_that_can_answers_and_the_reason_says_so():
    chosen, why = tool_specialist(ROUTING, {"code", "general"}, None)
    assert chosen == "general" and "math cannot call them" in why


def test_a_pinned_specialist_without_a_parser_or_a_service_without_any_is_a_400():
    with pytest.raises(APIError, match="'math' cannot call tools") as caught:
        tool_specialist({"choice": "math"}, {"code"}, "math")
    assert (caught.value.status, caught.value.param) == (400, "tools")
    with pytest.raises(APIError, match="none has a tool_parser"):
        tool_specialist(ROUTING, set(), None)
    assert tool_specialist({"choice": "code"}, {"code"}, "code") == ("code", "")


def request(**extra):
    body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}], **extra}
    return ChatCompletionRequest.model_validate(body)


TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "g"}}},
         "tool_choice"),
        ({"tools": [TOOL, TOOL]}, "tools"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"messages": [{"role": "user", "content": "hi"},
                       {"role": "tool", "content": "r", "tool_call_id": "x"}]},
         "messages[1].tool_call_id"),
        ({"messages": [{"role": "user", "content": "hi"}, {"role": "tool", "content": "r"}]},
         "messages[1].tool_call_id"),
    ],
)  # fmt: skip
def test_tool_parts_that_do_not_fit_together_are_400s(extra, param):
    body = request(**extra)
    with pytest.raises(APIError) as caught:
        check_tools(body.tools, body.tool_choice, body.messages)
    assert (caught.value.status, caught.value.param) == (400, param), caught.value.message


def test_a_result_of_an_earlier_call_is_fine_and_reaches_the_engine_with_its_fields():
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    body = request(
        tools=[TOOL],
        messages=[
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "content": "r", "tool_call_id": "c1"},
        ],
    )
    check_tools(body.tools, body.tool_choice, body.messages)
    extras = body.sampling_extras()
    assert extras["message_fields"] == [{}, {"tool_calls": [call]}, {"tool_call_id": "c1"}]
    assert extras["tools"] == [TOOL] and calls_tools(extras)
    assert not calls_tools({**extras, "tool_choice": "none"})


def test_streamed_deltas_add_up_to_whole_calls():
    calls: list[dict] = []
    add_call(calls, {"index": 0, "id": "a", "type": "function",
                     "function": {"name": "f", "arguments": '{"x"'}})  # fmt: skip
    add_call(calls, {"index": 1, "id": "b", "function": {"name": "g", "arguments": "{}"}})
    add_call(calls, {"index": 0, "function": {"arguments": ": 1}"}})
    assert calls == [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}},
        {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
    ]
