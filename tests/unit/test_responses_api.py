"""The Responses API's text form: its input as chat turns, what it refuses by name, and
the events a streamed answer becomes (in order, numbered, the text whole at the end)."""

from __future__ import annotations

import pytest

from orchestrator.errors import APIError
from orchestrator.serving.http import validate
from orchestrator.serving.responses import ResponseShape, ResponsesRequest


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
    assert body.conversation() == [
        ("system", "Be brief."),
        ("system", "Answer in French."),
        ("user", "Hi"),
        ("assistant", "Salut"),
    ]
    assert request(input="Hello").conversation() == [("user", "Hello")]


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools", "unsupported_parameter"),
        ({"store": True}, "store", "unsupported_parameter"),
        ({"previous_response_id": "resp_1"}, "previous_response_id", "unsupported_parameter"),
        ({"text": {"format": {"type": "json_schema"}}}, "text.format.type", "invalid_value"),
        ({"input": ""}, "input", "invalid_value"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role", "invalid_value"),
        ({"max_output_tokens": 0}, "max_output_tokens", "invalid_value"),
    ],
)
def test_what_it_does_not_do_is_a_400_naming_it(fields, param, code):
    with pytest.raises(APIError) as caught:
        request(**{"input": "hi", **fields})
    assert (caught.value.status, caught.value.param, caught.value.code) == (400, param, code)


def test_neutral_values_pass():
    body = request(input="hi", store=False, tools=[], truncation="disabled", include=[])
    assert body.conversation() == [("user", "hi")]


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
