"""Cascade and ensemble against real vLLM engines: real token log-probabilities decide
the cascade, and a real model composes the ensemble's answer."""

from __future__ import annotations

import math

import pytest

from tests.e2e.conftest import PRICES
from tests.helpers.http import ask

MATH_QUESTION = "What is 12 * 7?"  # routed to math; general is the cheaper specialist


def cascade(client, min_mean_logprob):
    options = {
        "policy": "cascade",
        "cascade": {"min_quality": 0.0, "min_mean_logprob": min_mean_logprob},
    }
    resp = ask(client, MATH_QUESTION, max_tokens=24, mixserve=options)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_cascade_judges_by_the_real_mean_log_probability(client):
    lenient = cascade(client, -100.0)  # any answer passes: the cheap specialist answers
    [call] = lenient["mixserve"]["policy"]["calls"]
    assert (call["specialist"], call["outcome"]) == ("general", "accepted")
    assert -20 < call["mean_logprob"] < 0 and math.isfinite(call["mean_logprob"])
    assert lenient["choices"][0]["message"]["content"].strip()
    strict = cascade(client, 0.0)  # nothing real is that sure: escalate to math
    first, last = strict["mixserve"]["policy"]["calls"]
    assert first["outcome"] == "escalated"
    assert abs(first["mean_logprob"] - call["mean_logprob"]) < 1e-3  # same greedy answer
    assert (last["specialist"], last["outcome"]) == ("math", "streamed")
    assert strict["model"] == "math" and strict["choices"][0]["message"]["content"].strip()
    assert strict["usage"]["completion_tokens"] == (
        first["completion_tokens"] + last["completion_tokens"]
    )
    # both calls are paid for, at each specialist's list price; replica time was measured
    paid = sum(
        (c["prompt_tokens"] + c["completion_tokens"]) * PRICES[c["specialist"]] / 1e6
        for c in (first, last)
    )
    assert strict["usage"]["cost"]["specialists_usd"] == pytest.approx(paid, abs=1e-9)
    assert first["busy_s"] > 0 and last["busy_s"] > 0


def test_ensemble_answer_is_composed_by_a_real_model(client):
    resp = ask(client, "What is 15 + 27?", max_tokens=32, mixserve={"policy": "ensemble"})
    body = resp.json()
    assert resp.status_code == 200, body
    calls = body["mixserve"]["policy"]["calls"]
    assert [c["role"] for c in calls] == ["candidate", "candidate", "synthesis"]
    assert calls[0]["specialist"] == "math" == body["model"]
    assert all(c["completion_tokens"] > 0 for c in calls)
    assert calls[2]["prompt_tokens"] > calls[0]["prompt_tokens"]
    assert body["choices"][0]["message"]["content"].strip()
