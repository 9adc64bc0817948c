"""Property, through the running service's HTTP endpoint: whatever a client sends as a
chat request (any JSON, a valid request with fields replaced, lone surrogates, deep
nesting, raw bytes), the answer is a 2xx or a 4xx with an OpenAI error body, never a
5xx. Bounded in count; the fake engines answer in a few tokens."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.helpers.fuzz import BODIES, mutated_chat


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.one_of(BODIES, mutated_chat().map(lambda b: json.dumps(b).encode())))
@example(b'{"\\ud800": {"\\ud800": null}}')  # found here: its error quoted the key
def test_no_request_body_gets_a_5xx(client, raw):
    resp = client.post(
        "/v1/chat/completions", content=raw, headers={"content-type": "application/json"}
    )
    assert resp.status_code < 500, (raw[:200], resp.status_code, resp.text[:300])
    if resp.status_code >= 400:
        error = resp.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["message"]
