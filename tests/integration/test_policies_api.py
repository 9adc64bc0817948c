"""Cascade and ensemble policies through the HTTP API, on the integration app: the learned
router predicts code best for code questions, code is priced 50x the others, and the fake
engines report a log-probability of -0.1 per token."""

from __future__ import annotations

import pytest

from tests.helpers.http import chat, sse_events

QUESTION = "Write a Python function that reverses a list"
CHEAP = {"general", "math"}


def policy_of(body):
    return body["mixserve"]["policy"]


def summed(calls, key):
    return sum(c[key] for c in calls)


def test_cascade_accepts_a_confident_cheap_answer(client):
    options = {"policy": "cascade", "cascade": {"min_quality": 0.05}}
    resp = chat(client, QUESTION, temperature=0.5, mixserve=options)
    body = resp.json()
    assert resp.status_code == 200, body
    policy = policy_of(body)
    assert policy["name"] == "cascade"
    [call] = policy["calls"]
    assert call["specialist"] in CHEAP and call["outcome"] == "accepted"
    assert call["mean_logprob"] == pytest.approx(-0.1)
    assert body["model"] == call["specialist"] == resp.headers["x-mixserve-specialist"]
    assert body["choices"][0]["message"]["content"].startswith(f"[{call['specialist']}]")
    assert body["usage"]["completion_tokens"] == call["completion_tokens"] > 0


def test_cascade_escalates_an_unsure_answer_to_the_best_specialist(client):
    options = {"policy": "cascade", "cascade": {"min_quality": 0.05, "min_mean_logprob": -0.05}}
    body = chat(client, QUESTION, temperature=0.5, mixserve=options).json()
    first, last = policy_of(body)["calls"]
    assert first["specialist"] in CHEAP and first["outcome"] == "escalated"
    assert last == {**last, "specialist": "code", "outcome": "streamed", "role": "answer"}
    assert body["model"] == "code"
    assert body["choices"][0]["message"]["content"].startswith("[code]")
    calls = policy_of(body)["calls"]
    assert last["completion_tokens"] > 0  # filled in once the stream ended
    assert body["usage"]["prompt_tokens"] == summed(calls, "prompt_tokens")
    assert body["usage"]["completion_tokens"] == summed(calls, "completion_tokens")


def test_cascade_with_no_adequate_cheap_specialist_asks_the_best_once(client):
    body = chat(client, QUESTION, temperature=0.5, mixserve={"policy": "cascade"}).json()
    assert [(c["specialist"], c["outcome"]) for c in policy_of(body)["calls"]] == [
        ("code", "streamed")
    ]


def test_ensemble_composes_the_top_two_answers(client):
    body = chat(client, QUESTION, temperature=0.5, mixserve={"policy": "ensemble"}).json()
    calls = policy_of(body)["calls"]
    assert [c["role"] for c in calls] == ["candidate", "candidate", "synthesis"]
    assert calls[0]["specialist"] == "code" and calls[1]["specialist"] in CHEAP
    synthesis = calls[2]
    assert synthesis["specialist"] == "code" == body["model"]  # default: the router's choice
    # the synthesizer read the question and both candidates' answers
    assert synthesis["prompt_tokens"] > max(c["prompt_tokens"] for c in calls[:2])
    assert body["usage"]["total_tokens"] == summed(calls, "prompt_tokens") + summed(
        calls, "completion_tokens"
    )


def test_streamed_ensemble_reports_its_calls_first_and_the_total_usage_last(client):
    resp = chat(
        client,
        QUESTION,
        temperature=0.5,
        stream=True,
        stream_options={"include_usage": True},
        mixserve={"policy": "ensemble"},
    )
    assert resp.status_code == 200
    events = sse_events(resp.text)
    calls = events[0]["mixserve"]["policy"]["calls"]
    assert [c["outcome"] for c in calls] == ["composed", "composed", "streamed"]
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"])
    usage = events[-1]["usage"]
    candidates = summed(calls[:2], "completion_tokens")
    assert usage["completion_tokens"] > candidates > 0  # candidates + the synthesis


def test_policy_answers_are_cached_with_their_calls(client):
    options = {"policy": "cascade", "cascade": {"min_quality": 0.05, "min_mean_logprob": -0.05}}
    question = "Write a Rust function that sums a vector"
    first = chat(client, question, temperature=0, mixserve=options).json()
    again = chat(client, question, temperature=0, mixserve=options).json()
    assert (first["mixserve"]["cached"], again["mixserve"]["cached"]) == (False, True)
    assert again["model"] == first["model"]
    assert policy_of(again) == policy_of(first)
    tokens = ("prompt_tokens", "completion_tokens", "total_tokens")
    assert [again["usage"][k] for k in tokens] == [first["usage"][k] for k in tokens]
    assert again["usage"]["cost"]["specialists_usd"] == 0  # no call made this time
    single = chat(client, question, temperature=0).json()  # another policy: another entry
    assert single["mixserve"]["cached"] is False and single["model"] == "code"


@pytest.mark.parametrize(
    "extra, param",
    [
        ({"model": "code", "mixserve": {"policy": "cascade"}}, "mixserve.policy"),
        ({"mixserve": {"policy": "vote"}}, "mixserve.policy"),
        ({"mixserve": {"policy": "ensemble", "ensemble": {"top_k": 3}}}, "mixserve.ensemble.top_k"),
        ({"mixserve": {"cascade": {"min_mean_logprob": 1}}}, "mixserve.cascade.min_mean_logprob"),
    ],
)
def test_bad_policy_options_are_400(client, extra, param):
    resp = chat(client, QUESTION, **extra)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == param
