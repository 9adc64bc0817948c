"""Hypothesis strategies for request bodies: arbitrary JSON, valid chat requests with any
field replaced or added, lone surrogates and deep nesting, all as raw bytes."""

from __future__ import annotations

import json

from hypothesis import strategies as st

LONE_SURROGATES = st.sampled_from(["\ud800", "\udfff", "a\udc00b", "\ud83d"])
TEXT = st.one_of(st.text(max_size=20), LONE_SURROGATES)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)
FIELDS = st.sampled_from(
    ["model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n",
     "stream", "stream_options", "stop", "seed", "user", "mixserve", "tools", "logprobs",
     "top_logprobs", "response_format", "frequency_penalty", "tool_choice", "colour"]
)  # fmt: skip
MESSAGE_FIELDS = st.sampled_from(["role", "content", "name", "tool_calls", "refusal", "x"])


def valid_chat(max_tokens: int = 4) -> dict:
    return {
        "model": "auto",
        "messages": [{"role": "user", "content": "What is 2 + 2?"}],
        "max_tokens": max_tokens,
        "temperature": 0.5,
    }


@st.composite
def mutated_chat(draw: st.DrawFn, max_tokens: int = 4) -> dict:
    """A valid request with a few fields (of the body or its message) replaced by any
    JSON; ``max_tokens`` stays small when it stays a number, so answers stay short."""
    body = valid_chat(max_tokens)
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            body[draw(FIELDS)] = draw(JSON)
        else:
            message = dict(body["messages"][0]) if isinstance(body.get("messages"), list) and \
                body["messages"] and isinstance(body["messages"][0], dict) else {}  # fmt: skip
            message[draw(MESSAGE_FIELDS)] = draw(JSON)
            body["messages"] = [message]
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > max_tokens:
            body[name] = max_tokens
    return body


def nested(depth: int) -> bytes:
    return b'{"model": "auto", "messages": ' + b"[" * depth + b"]" * depth + b"}"


BODIES = st.one_of(
    JSON.map(lambda v: json.dumps(v).encode()),
    mutated_chat().map(lambda v: json.dumps(v).encode()),
    st.integers(1, 5000).map(nested),
    st.binary(max_size=64),
)
