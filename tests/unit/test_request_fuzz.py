"""Property: whatever bytes a client sends as a chat request, parsing and validating
them either succeeds or raises a 4xx ``APIError`` with an OpenAI error body; nothing
else escapes (an escaping exception is what became a 500)."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, example, given, settings

from orchestrator.errors import APIError
from orchestrator.serving.http import error_response, parse_json, validate
from orchestrator.serving.protocol import ChatCompletionRequest, conversation
from tests.helpers.fuzz import BODIES, nested

LIMIT = 1_000_000


def parse_chat(raw: bytes) -> None:
    body = validate(ChatCompletionRequest, parse_json(raw, LIMIT))
    conversation(body)
    body.stop_list()
    body.requested_max_tokens()


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(BODIES)
@example(b'{"\\ud800": {"\\ud800": null}}')  # its error once quoted the key, and crashed
def test_any_body_is_accepted_or_refused_with_a_4xx(raw):
    try:
        parse_chat(raw)
    except APIError as err:
        assert 400 <= err.status < 500, (err.status, err.message)
        response = error_response(err)  # what the client is sent must encode
        body = json.loads(response.body)["error"]
        assert set(body) == {"message", "type", "param", "code"} and body["message"]


def test_the_named_inputs_that_were_500s_are_400s():
    for raw in (
        json.dumps({"model": "auto", "messages": [{"role": "user", "content": "\ud800"}]}).encode(),
        nested(100_000),
        nested(65),
    ):
        try:
            parse_chat(raw)
        except APIError as err:
            assert err.status == 400 and err.code == "invalid_json", err.message
        else:
            raise AssertionError(f"accepted {raw[:60]!r}")


def test_unsupported_parameters_are_named_and_neutral_values_pass():
    base = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    for field, value in (
        ("tools", [{"type": "function", "function": {"name": "f"}}]),
        ("logprobs", True),
        ("top_logprobs", 3),
        ("response_format", {"type": "json_object"}),
        ("presence_penalty", 0.5),
    ):
        try:
            validate(ChatCompletionRequest, {**base, field: value})
        except APIError as err:
            assert (err.status, err.param, err.code) == (400, field, "unsupported_parameter")
            assert field in err.message
        else:
            raise AssertionError(f"{field}={value!r} was accepted")
    try:  # a seed the engine could not take (vLLM's is 64-bit) is refused up front
        validate(ChatCompletionRequest, {**base, "seed": 2**70})
    except APIError as err:
        assert (err.status, err.param) == (400, "seed")
    else:
        raise AssertionError("a seed past 64 bits was accepted")
    neutral = {"tools": [], "logprobs": False, "response_format": {"type": "text"},
               "presence_penalty": 0, "tool_choice": None, "store": False}  # fmt: skip
    validate(ChatCompletionRequest, {**base, **neutral})
    try:
        validate(ChatCompletionRequest, {**base, "colour": "red"})
    except APIError as err:
        assert (err.param, err.code) == ("colour", "unknown_parameter")
    else:
        raise AssertionError("an unknown parameter was accepted")
