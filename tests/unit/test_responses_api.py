"""The Responses API: its input as chat messages (function calls and their outputs
included), its function tools and text formats as chat's, what it refuses by name, and
the events a streamed answer becomes (in order, numbered, the text and each call whole at
the end)."""

from __future__ import annotations

import pytest

from orchestrator.errors import APIError
from orchestrator.serving.http import validate
from orchestrator.serving.responses import ResponsesRequest
from orchestrator.serving.responses_output import ResponseShape, output_items


def request(**fields):
    return validate(ResponsesRequest, ResponsesRequest.checked({"model": "auto", **fields}))


def test_instructions_and_input_become_chat_turns():
    body = request(
        instructions="Be brief.",
        input=[
            {"role": "developer", "content": "Answer in French."},
            {"role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
            {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
             "content": [{"type": "output_text", "text": "Salut", "annotations": []}]},
        ],
    )  # fmt: skip
    assert body.messages() == [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": "Answer in French."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Salut"},
    ]
    assert request(input="Hello").messages() == [{"role": "user", "content": "Hello"}]


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools[0].type", "invalid_value"),
        ({"tools": [{"type": "function"}]}, "tools[0].name", "missing_required_parameter"),
        ({"tool_choice": "sometimes"}, "tool_choice", "invalid_value"),
        ({"max_tool_calls": 2}, "max_tool_calls", "unsupported_parameter"),
        ({"store": True}, "store", "unsupported_parameter"),
        ({"previous_response_id": "resp_1"}, "previous_response_id", "unsupported_parameter"),
        ({"text": {"format": {"type": "json_schema"}}}, "text.format.name",
         "missing_required_parameter"),
        ({"text": {"format": {"type": "xml"}}}, "text.format", "invalid_value"),
        ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id",
         "missing_required_parameter"),
        ({"input": ""}, "input", "invalid_value"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role", "invalid_value"),
        ({"max_output_tokens": 0}, "max_output_tokens", "invalid_value"),
    ],
)  # fmt: skip
def test_what_it_does_not_do_is_a_400_naming_it(fields, param, code):
    with pytest.raises(APIError) as caught:
        request(**{"input": "hi", **fields})
    assert (caught.value.status, caught.value.param, caught.value.code) == (400, param, code)


def test_neutral_values_pass():
    body = request(input="hi", store=False, tools=[], truncation="disabled", include=[])
    assert body.messages() == [{"role": "user", "content": "hi"}]


def test_a_streamed_answer_becomes_numbered_events_with_the_whole_text_at_the_end():
    shape = ResponseShape(request(input="hi", max_output_tokens=5))
    meta = {"specialist": "general"}
    events = shape.chunk("resp-r1", "general", 0, shape.opening(), extra={"mixserve": meta})
    events += shape.chunk("resp-r1", "general", 0, {"content": "Hello"})
    events += shape.chunk("resp-r1", "general", 0, {"content": ""})  # nothing to send
    events += shape.chunk("resp-r1", "general", 0, {"content": " there"})
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    events += shape.chunk("resp-r1", "general", 0, {}, "length", extra={"usage": usage})
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.content_part.added", "response.output_text.delta",
        "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.incomplete",
    ]  # fmt: skip
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[-4]["text"] == "Hello there" and events[-1]["response"]["id"] == "resp_r1"
    final = events[-1]["response"]
    assert final["usage"]["output_tokens"] == 2 and final["incomplete_details"] == {
        "reason": "max_output_tokens"
    }
    assert final["output"][0]["content"][0]["text"] == "Hello there"


TOOL = {"type": "function", "name": "weather", "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}  # fmt: skip
CALL = {"id": "call_1", "type": "function",
        "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}  # fmt: skip


def test_function_tools_and_a_json_schema_become_chats():
    body = request(
        input="Weather in Paris?",
        tools=[TOOL],
        tool_choice={"type": "function", "name": "weather"},
        parallel_tool_calls=False,
        text={"format": {"type": "json_schema", "name": "w", "strict": True,
                         "schema": {"type": "object"}}},
    )  # fmt: skip
    chat = body.chat_body()
    assert chat["tools"] == [{"type": "function", "function": {k: v for k, v in TOOL.items()
                                                               if k != "type"}}]  # fmt: skip
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "weather"}}
    assert chat["parallel_tool_calls"] is False
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "w", "strict": True, "schema": {"type": "object"}},
    }
    echoed = body.echoed()
    assert echoed["tools"] == [TOOL] and echoed["parallel_tool_calls"] is False
    assert echoed["text"]["format"]["schema"] == {"type": "object"}
    plain = request(input="hi").echoed()
    assert (plain["tool_choice"], plain["text"]) == ("none", {"format": {"type": "text"}})
    assert request(input="hi", text={"format": {"type": "json_object"}}).chat_body()[
        "response_format"
    ] == {"type": "json_object"}


def test_function_calls_and_their_outputs_become_an_assistant_turn_and_tool_messages():
    body = request(
        input=[
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"type": "function_call", "call_id": "call_1", "name": "weather",
             "arguments": '{"city": "Paris"}', "id": "fc_1", "status": "completed"},
            {"type": "function_call", "call_id": "call_2", "name": "weather",
             "arguments": '{"city": "Rome"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            {"type": "function_call_output", "call_id": "call_2",
             "output": [{"type": "input_text", "text": "rain"}]},
        ],
        tools=[TOOL],
    )  # fmt: skip
    messages = body.messages()
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool"]
    assert [c["id"] for c in messages[1]["tool_calls"]] == ["call_1", "call_2"]
    rome = {"name": "weather", "arguments": '{"city": "Rome"}'}
    assert messages[1]["tool_calls"][1]["function"] == rome
    assert messages[2:] == [
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "rain"},
    ]


def test_an_answer_of_calls_only_has_no_message_item():
    items = output_items("r1", "", [CALL])
    assert [i["type"] for i in items] == ["function_call"]
    assert items[0]["call_id"] == "call_1" and items[0]["arguments"] == '{"city": "Paris"}'
    assert [i["type"] for i in output_items("r1", "Hi", [])] == ["message"]
    assert [i["type"] for i in output_items("r1", "", [])] == ["message"]  # empty, but there


def test_a_streamed_call_becomes_its_item_and_arguments_events():
    shape = ResponseShape(request(input="Weather in Paris?", tools=[TOOL]))
    events = shape.chunk("resp-r1", "general", 0, shape.opening(), extra={"mixserve": {}})
    head = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "weather"}}
    events += shape.chunk("resp-r1", "general", 0, {"content": "", "tool_calls": [head]})
    for piece in ('{"city": ', '"Paris"}'):
        delta = {"index": 0, "function": {"arguments": piece}}
        events += shape.chunk("resp-r1", "general", 0, {"content": "", "tool_calls": [delta]})
    usage = {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15}
    events += shape.chunk("resp-r1", "general", 0, {}, "tool_calls", extra={"usage": usage})
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.function_call_arguments.delta", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.completed",
    ]  # fmt: skip
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    added, done = events[2]["item"], events[-2]["item"]
    assert (added["status"], added["arguments"], added["call_id"]) == ("in_progress", "", "call_1")
    assert done["arguments"] == '{"city": "Paris"}' == events[5]["arguments"]
    assert events[-1]["response"]["output"] == [done] and done["status"] == "completed"
