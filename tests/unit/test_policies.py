"""Answer policies (single, cascade, ensemble) against a scripted caller: the order of
calls, escalation by mean log-probability, failures, and the call and token bounds."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.config import PolicyConfig
from orchestrator.errors import APIError
from orchestrator.policies import (
    CallFailed,
    PolicyRequest,
    PolicySettings,
    cascade_chain,
    ensemble_members,
    mean_logprob,
    policy_names,
    register_policy,
    run_policy,
)
from orchestrator.serving.plan import policy_for
from orchestrator.serving.protocol import MixserveOptions

ROUTING = {
    "choice": "big",
    "scores": {"tiny": 0.55, "mid": 0.52, "big": 0.8},
    "utilities": {"tiny": 0.55, "mid": 0.52, "big": 0.8},
    "relative_costs": {"tiny": 0.01, "mid": 0.1, "big": 1.0},
}


class Script:
    """A caller answering from a script: specialist -> (text, tokens, mean log-prob) or
    an exception; it records the calls it got."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    async def __call__(self, specialist, payload):
        self.calls.append((specialist, payload))
        answer = self.answers[specialist]
        if isinstance(answer, BaseException):
            raise answer
        text, tokens, mean = answer
        logprob = mean * tokens if payload.get("logprobs") else None
        return {
            "text": text,
            "prompt_tokens": 100,
            "completion_tokens": tokens,
            "finish_reason": "stop",
            "cumulative_logprob": logprob,
        }


def payload(max_tokens=50):
    return {
        "request_id": "r1",
        "messages": [("system", "be brief"), ("user", "What is 2+2?"), ("assistant", "hm")],
        "passages": [],
        "max_tokens": max_tokens,
    }


def run(name, script, routing=ROUTING, max_tokens=50, **settings):
    req = PolicyRequest(routing, payload(max_tokens), PolicySettings(**settings), script)
    return asyncio.run(run_policy(name, req))


def test_cascade_chain_is_the_cost_quality_frontier_from_the_cheapest_adequate():
    scores, costs = ROUTING["scores"], ROUTING["relative_costs"]
    # mid is dearer than tiny and predicted worse: never worth a call
    assert cascade_chain(scores, costs, 0.5, 3) == ["tiny", "big"]
    assert cascade_chain(scores, costs, 0.6, 3) == ["big"]  # tiny is not adequate
    same = {"tiny": 0.0, "mid": 0.0, "big": 0.0}
    assert cascade_chain(scores, same, 0.0, 3) == ["big"]  # no saving to buy: best first
    many = {f"s{i}": 0.5 + i / 10 for i in range(5)}
    rising = {f"s{i}": float(i) for i in range(5)}
    assert cascade_chain(many, rising, 0.0, 3) == ["s0", "s1", "s4"]  # best kept last
    assert cascade_chain(many, rising, 0.0, 1) == ["s4"]


def test_cascade_accepts_a_confident_cheap_answer():
    script = Script({"tiny": ("4", 10, -0.2), "big": ("4", 10, -0.1)})
    finish = run("cascade", script, min_mean_logprob=-0.5)
    assert [c[0] for c in script.calls] == ["tiny"]
    assert script.calls[0][1]["logprobs"] is True
    assert finish.specialist == "tiny" and finish.answer["text"] == "4"
    assert finish.calls[0].outcome == "accepted"
    assert finish.calls[0].mean_logprob == pytest.approx(-0.2)
    assert finish.payload is None


def test_cascade_escalates_an_unsure_answer_and_streams_the_last_step():
    script = Script({"tiny": ("5?", 10, -2.0), "big": ("4", 10, -0.1)})
    finish = run("cascade", script, min_mean_logprob=-0.5)
    assert [c[0] for c in script.calls] == ["tiny"]  # the last step is streamed, not called
    assert finish.specialist == "big" and finish.answer is None
    assert finish.payload["request_id"] == "r1.1" and "logprobs" not in finish.payload
    assert [(c.specialist, c.outcome) for c in finish.calls] == [
        ("tiny", "escalated"),
        ("big", "streamed"),
    ]


def test_cascade_never_accepts_an_empty_answer_however_sure():
    finish = run("cascade", Script({"tiny": ("  \n", 2, -0.01)}), min_mean_logprob=-0.5)
    assert finish.specialist == "big" and finish.calls[0].outcome == "escalated: empty answer"


def test_cascade_escalates_past_a_failed_specialist_but_not_past_bad_input():
    finish = run("cascade", Script({"tiny": CallFailed("tiny: at capacity")}))
    assert finish.specialist == "big" and finish.calls[0].outcome.startswith("failed")
    with pytest.raises(APIError):
        run("cascade", Script({"tiny": APIError(400, "too long")}))


def test_cascade_token_bound_returns_the_most_confident_answer():
    script = Script({"tiny": ("5?", 10, -2.0), "big": ("4", 10, -0.1)})
    # spent 110 + next prompt ~100 + max_tokens 50 = 260 > 200: big is never asked
    finish = run("cascade", script, min_mean_logprob=-0.5, max_total_tokens=200)
    assert finish.specialist == "tiny" and finish.answer["text"] == "5?"
    assert "token bound" in finish.reason


def test_a_missing_logprob_counts_as_unsure():
    assert mean_logprob({"cumulative_logprob": None, "completion_tokens": 3}) is None
    assert mean_logprob({"cumulative_logprob": -3.0, "completion_tokens": 3}) == -1.0
    assert mean_logprob({"cumulative_logprob": 0.0, "completion_tokens": 0}) == 0.0


def test_ensemble_fans_out_to_the_top_k_and_synthesizes():
    script = Script({"big": ("four", 5, -0.1), "tiny": ("4", 3, -0.1)})
    finish = run("ensemble", script, top_k=2, synthesizer="mid")
    assert sorted(c[0] for c in script.calls) == ["big", "tiny"]
    assert {c[1]["request_id"] for c in script.calls} == {"r1.0", "r1.1"}
    assert finish.specialist == "mid" and finish.answer is None
    messages = finish.payload["messages"]
    assert messages[0] == ("system", "be brief") and messages[2] == ("assistant", "hm")
    prompt = messages[1][1]
    assert prompt.startswith("What is 2+2?")
    assert "[1] big: four" in prompt and "[2] tiny: 4" in prompt
    assert [c.role for c in finish.calls] == ["candidate", "candidate", "synthesis"]


def test_ensemble_members_leave_a_call_for_the_synthesizer():
    assert ensemble_members(ROUTING["utilities"], 3, 3) == ["big", "tiny"]
    assert ensemble_members(ROUTING["utilities"], 2, 1) == ["big"]


def test_ensemble_survives_a_failed_candidate_and_fails_when_all_do():
    script = Script({"big": ("four", 5, -0.1), "tiny": CallFailed("tiny: down")})
    finish = run("ensemble", script, top_k=2)
    assert finish.specialist == "big" and finish.answer["text"] == "four"  # one left
    with pytest.raises(CallFailed):
        run("ensemble", Script({"big": CallFailed("x"), "tiny": CallFailed("y")}), top_k=2)


def test_ensemble_composes_only_non_empty_answers():
    script = Script({"big": ("four", 5, -0.1), "tiny": ("\n", 1, -0.1)})
    finish = run("ensemble", script, top_k=2)
    assert finish.specialist == "big" and finish.answer["text"] == "four"
    assert finish.calls[1].outcome == "dropped: empty"


def test_ensemble_token_bound_drops_the_lowest_ranked_candidates():
    script = Script({"big": ("four", 5, -0.1), "tiny": ("4", 3, -0.1)})
    # spent 208; synthesis needs ~100 + 8 + 24 + 50 more: over 300
    finish = run("ensemble", script, top_k=2, max_total_tokens=300)
    assert finish.specialist == "big" and finish.answer["text"] == "four"
    assert finish.calls[1].outcome == "dropped: token bound"


def test_policy_registry_and_request_settings():
    assert policy_names() == ["cascade", "ensemble", "single"]
    with pytest.raises(ValueError, match="already registered"):
        register_policy("cascade")(lambda req: None)
    config = PolicyConfig(default="cascade")
    name, settings = policy_for(config, "auto", None)
    assert name == "cascade" and settings.min_mean_logprob == -1.0
    assert policy_for(config, "code", None)[0] == "single"  # a pinned model answers alone
    opts = MixserveOptions.model_validate(
        {"policy": "ensemble", "ensemble": {"top_k": 2}, "cascade": {"min_quality": 0.1}}
    )
    name, settings = policy_for(config, "auto", opts)
    assert (name, settings.top_k, settings.min_quality) == ("ensemble", 2, 0.1)
    with pytest.raises(APIError, match="needs model 'auto'"):
        policy_for(config, "code", MixserveOptions(policy="cascade"))
    too_many = MixserveOptions.model_validate({"policy": "ensemble", "ensemble": {"top_k": 3}})
    with pytest.raises(APIError, match="max_calls of 3"):
        policy_for(config, "auto", too_many)
    with pytest.raises(ValueError, match="unknown policy 'vote'"):
        MixserveOptions(policy="vote")
