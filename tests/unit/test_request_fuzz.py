"""Property: whatever bytes a client sends as a chat request, parsing and validating
them either succeeds or raises a 4xx ``APIError`` with an OpenAI error body; nothing
else escapes (an escaping exception is what became a 500)."""

from __future__ import annotations

import json

import pytest
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
        ("functions", [{"name": "f"}]),  # the deprecated form of tools
        ("function_call", "auto"),
        ("audio", {"voice": "alloy", "format": "wav"}),
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
    assert validate(ChatCompletionRequest, {**base, **neutral}).sampling_extras() == {}
    try:
        validate(ChatCompletionRequest, {**base, "colour": "red"})
    except APIError as err:
        assert (err.param, err.code) == ("colour", "unknown_parameter")
    else:
        raise AssertionError("an unknown parameter was accepted")


SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def test_sampling_parameters_the_engine_honours_reach_it_as_asked():
    base = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    asked = {
        "logprobs": True,
        "top_logprobs": 5,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.25,
        "logit_bias": {"17": -100, "3": 2.5},
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "city", "schema": SCHEMA, "strict": True},
        },
    }
    body = validate(ChatCompletionRequest, {**base, **asked})
    assert body.sampling_extras() == {k: v for k, v in asked.items() if k != "logprobs"}
    only = validate(ChatCompletionRequest, {**base, "logprobs": True})
    assert only.sampling_extras() == {"top_logprobs": 0}  # each token's, no alternatives
    json_object = {**base, "response_format": {"type": "json_object"}}
    extras = validate(ChatCompletionRequest, json_object).sampling_extras()
    assert extras == {"response_format": {"type": "json_object"}}


@pytest.mark.parametrize(
    ("field", "value", "param"),
    [
        ("top_logprobs", 21, "top_logprobs"),
        ("response_format", {"type": "xml"}, "response_format.type"),
        ("response_format", {"type": "json_schema"}, "response_format"),
        (
            "response_format",
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "objectx"}}},
            "response_format.json_schema.schema",
        ),
        (
            "response_format",
            {"type": "json_schema", "json_schema": {"name": "no spaces", "schema": SCHEMA}},
            "response_format.json_schema.name",
        ),
        ("logit_bias", {"the": 5}, "logit_bias"),
        ("logit_bias", {"17": 101}, "logit_bias"),
        ("presence_penalty", 2.5, "presence_penalty"),
        ("frequency_penalty", "high", "frequency_penalty"),
    ],
)
def test_bad_values_of_honoured_parameters_are_400s_naming_them(field, value, param):
    base = {"model": "auto", "messages": [{"role": "user", "content": "hi"}], "logprobs": True}
    with pytest.raises(APIError) as caught:
        validate(ChatCompletionRequest, {**base, field: value})
    assert (caught.value.status, caught.value.param) == (400, param), caught.value.message


def test_top_logprobs_without_logprobs_is_refused():
    base = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(APIError, match="top_logprobs needs logprobs") as caught:
        validate(ChatCompletionRequest, {**base, "top_logprobs": 2})
    assert (caught.value.status, caught.value.param) == (400, "top_logprobs")
