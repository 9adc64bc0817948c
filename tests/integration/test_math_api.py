"""The math specialist's symbolic engine through the running app: exact answers with
their steps, which way answered in the response, the trace and the ledger, refusals of
adversarial input that are quick and clear, and the model's answer for what it cannot
read. The model behind it is the fake engine (tests/e2e/test_real_math.py: the real one)."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.helpers.fleet import ledger
from tests.helpers.http import chat, sse_events
from tests.helpers.math_cases import ADVERSARIAL, assert_refused
from tests.helpers.waits import wait_trace


def fresh(question: str) -> str:
    """The question made unique, so that no answer comes from the response cache."""
    return f"Here is one ({uuid.uuid4().hex[:6]}). {question}"


def test_a_routed_product_is_answered_exactly_and_says_so_everywhere(client, service):
    since = time.time()
    resp = chat(client, fresh("What is 4821 times 3977?"), temperature=0, max_tokens=200)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    text = body["choices"][0]["message"]["content"]
    assert text.startswith("4821 * 3977 = 19173117\n")
    assert "Steps (solved exactly by the symbolic engine)" in text
    assert body["model"] == "math" and resp.headers["x-mixserve-specialist"] == "math"
    policy = body["mixserve"]["policy"]
    assert policy["method"] == "symbolic"
    [call] = policy["calls"]
    assert (call["specialist"], call["method"], call["outcome"]) == ("math", "symbolic", "streamed")
    usage = body["usage"]
    assert usage["completion_tokens"] == len(text.split())  # the fake model's tokenizer
    assert usage["prompt_tokens"] > 0 and call["busy_s"] > 0
    assert usage["cost"]["specialists_usd"] > 0  # its replica's time, at the replica price

    rid = body["mixserve"]["request_id"]
    trace = wait_trace(client, rid, lambda names: "mixserve.specialist.generate" in names)
    spans = {s["name"]: s["attributes"] for s in trace["spans"]}
    assert spans["chat auto"]["mixserve.answer.method"] == "symbolic"
    assert spans["mixserve.specialist.generate"]["mixserve.answer.method"] == "symbolic"
    mine = [r for r in ledger(service).records(since) if r["trace_id"] == trace["trace_id"]]
    assert [r["method"] for r in mine] == ["symbolic"]


def test_streamed_answers_carry_the_exact_value_and_usage(client):
    resp = chat(client, fresh("Solve for x: 7x - 12 = 3x + 20"), model="math", stream=True)
    assert resp.status_code == 200, resp.text
    events = sse_events(resp.text)
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"])
    assert text.startswith("x = 8\n")
    assert "Moved every term to the left: 4*x - 32 = 0" in text
    usage = events[-1]["usage"]
    assert usage["completion_tokens"] == len(text.split()) and usage["cost"]["total_usd"] > 0


@pytest.mark.parametrize(("question", "reason"), ADVERSARIAL)
def test_adversarial_math_gets_a_quick_clear_refusal(client, question, reason):
    assert_refused(client, question, reason)


def test_what_it_cannot_read_gets_the_models_answer_marked_unverified(client):
    question = fresh("Prove that there are infinitely many primes.")
    resp = chat(client, question, model="math", max_tokens=100)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    # the fake model's answer (it wrote no expression: its echo of the question is none)
    assert body["choices"][0]["message"]["content"].startswith("[math] Here is one")
    assert body["mixserve"]["policy"]["method"] == "unverified"
    assert body["mixserve"]["policy"]["calls"][0]["method"] == "unverified"


def test_questions_that_are_not_math_never_reach_it(client):
    for question in ("What is the capital of France?", "Write a Python function that adds."):
        # (sampled answers are not cached: no need to make the question unique)
        body = chat(client, question, max_tokens=20, temperature=0.7).json()
        assert body["model"] in ("general", "code")
        assert "method" not in body["mixserve"]["policy"]
        assert all(not c.get("method") for c in body["mixserve"]["policy"]["calls"])
