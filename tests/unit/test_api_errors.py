import asyncio

import pytest
from pydantic import ValidationError

from orchestrator.errors import (
    APIError,
    from_exception,
    from_validation_errors,
    http_status,
    unknown_model,
)
from orchestrator.serving.plan import outcome_of
from orchestrator.serving.protocol import ChatCompletionRequest, ChatMessage
from specialists.errors import ContextLengthError


def errors_of(data):
    with pytest.raises(ValidationError) as info:
        ChatCompletionRequest.model_validate(data)
    return from_validation_errors(info.value.errors(include_url=False))


def test_missing_messages_names_the_parameter():
    err = errors_of({"model": "auto"})
    assert err.status == 400 and err.param == "messages"
    assert err.code == "missing_required_parameter"
    body = err.body()["error"]
    assert set(body) == {"message", "type", "param", "code"}
    assert body["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    "data, param",
    [
        ({"model": "auto", "messages": []}, "messages"),
        ({"model": "auto", "messages": "hi"}, "messages"),
        ({"model": "auto", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        (
            {"model": "auto", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0},
            "max_tokens",
        ),
        (
            {"model": "auto", "messages": [{"role": "user", "content": "x"}], "max_tokens": "ten"},
            "max_tokens",
        ),
        (
            {"model": "auto", "messages": [{"role": "user", "content": "x"}], "temperature": 5},
            "temperature",
        ),
        ({"model": 7, "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "auto", "messages": [{"role": "user", "content": "x"}], "n": 0}, "n"),
        ({"model": "auto", "messages": [{"role": "user", "content": "x"}], "n": 500}, "n"),
    ],
)
def test_bad_fields_map_to_400_with_param(data, param):
    err = errors_of(data)
    assert err.status == 400
    assert err.param == param
    assert param in err.message


def test_multipart_text_content_is_joined_and_images_rejected():
    msg = ChatMessage(
        role="user", content=[{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    )
    assert msg.text() == "ab"
    with pytest.raises(ValueError, match="only text"):
        ChatMessage(role="user", content=[{"type": "image_url", "image_url": {}}]).text()


def test_context_length_error_maps_to_400_even_wrapped_like_ray_does():
    class Wrapped(Exception):
        def __init__(self, cause):
            self.cause = cause

    err = from_exception(Wrapped(ContextLengthError("too long")), "r1")
    assert (err.status, err.code, err.param) == (400, "context_length_exceeded", "messages")


def test_overload_is_503_with_retry_after_and_unknown_is_500_without_trace():
    from ray.serve.exceptions import BackPressureError

    busy = from_exception(BackPressureError(num_queued_requests=3, max_queued_requests=2), "r1")
    assert busy.status == 503 and busy.headers() == {"Retry-After": "1"}
    assert busy.code == "overloaded"
    # Serve's BackpressureConfig may set another status and wait: they are kept
    slow = BackPressureError(num_queued_requests=3, max_queued_requests=2, status_code=429,
                             retry_after_s=2.5)  # fmt: skip
    assert from_exception(slow, "r1").status == 429
    assert from_exception(slow, "r1").headers() == {"Retry-After": "3"}

    class BackPressureErrorLookalike(Exception):  # matched by class, never by name
        pass

    BackPressureErrorLookalike.__name__ = "BackPressureError"
    assert from_exception(BackPressureErrorLookalike("queue full"), "r1").status == 500
    boom = from_exception(RuntimeError("secret internals"), "r2")
    assert boom.status == 500
    assert "secret" not in boom.message and "r2" in boom.message


def test_unknown_model_lists_choices():
    err = unknown_model("gpt-9", ["auto", "code"])
    assert err.status == 404 and err.code == "model_not_found" and "auto, code" in err.message
    assert err.body()["error"]["param"] == "model"


@pytest.mark.parametrize(
    "exc, status, outcome",
    [
        (APIError(402, "no budget"), 402, "error 402"),
        (TimeoutError(), 504, "error 504"),
        (RuntimeError("boom"), 500, "error 500"),
        (asyncio.CancelledError(), 499, "disconnected"),
    ],
)
def test_one_status_for_a_failure_in_traces_and_the_ledger(exc, status, outcome):
    assert http_status(exc) == status and outcome_of(exc) == outcome
