"""The typed wire from the gateway to an engine replica: a payload becomes the OpenAI
request plus mixserve's envelope, whole messages with their tool fields; a field the
wire does not know, or a value out of range, fails where the call leaves the gateway."""

from __future__ import annotations

import pickle

import pytest
from pydantic import ValidationError

from orchestrator.serving.wire import EngineCall

CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


def payload(**extra):
    return {
        "request_id": "r1",
        "specialist": "general",
        "messages": [("user", "weather?"), ("assistant", ""), ("tool", "sunny"), ("user", "so?")],
        "message_fields": [{}, {"tool_calls": [CALL]}, {"tool_call_id": "call_1"}, {}],
        "passages": [["guide.md", "text"]],
        "max_tokens": 16,
        "temperature": 0.0,
        "top_p": 1.0,
        "stop": [],
        "seed": None,
        **extra,
    }


def test_a_payload_becomes_the_openai_request_inside_the_envelope():
    tools = [{"type": "function", "function": {"name": "f"}}]
    traced = {"traceparent": "x"}
    call = EngineCall.of(payload(tools=tools, tool_choice="auto", top_logprobs=3, trace=traced))
    body = call.body
    assert [m.as_dict() for m in body.messages] == [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "", "tool_calls": [CALL]},
        {"role": "tool", "content": "sunny", "tool_call_id": "call_1"},
        {"role": "user", "content": "so?"},
    ]
    assert (body.max_tokens, body.top_logprobs, body.tool_choice, body.seed) == (
        16,
        3,
        "auto",
        None,
    )
    assert (call.request_id, call.specialist, call.continuation) == ("r1", "general", "")
    assert call.passages == [("guide.md", "text")] and call.trace == {"traceparent": "x"}
    assert pickle.loads(pickle.dumps(call)) == call  # what Serve sends to the replica


@pytest.mark.parametrize(
    "extra, field",
    [
        ({"best_of": 2}, "body.best_of"),  # a field the engine side does not know
        ({"top_logprobs": 21}, "body.top_logprobs"),
        ({"max_tokens": 0}, "body.max_tokens"),
        ({"request_id": ""}, "request_id"),
        ({"messages": [("robot", "x")], "message_fields": None}, "body.messages.0.role"),
    ],
)
def test_what_the_wire_does_not_take_fails_at_the_gateway(extra, field):
    with pytest.raises(ValidationError) as info:
        EngineCall.of(payload(**extra))
    assert [".".join(map(str, e["loc"])) for e in info.value.errors()] == [field]
