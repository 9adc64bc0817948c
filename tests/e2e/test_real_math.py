"""The math specialist's symbolic engine on the running CPU profile, with the real router
and the real Gemma 3 270M behind it: exact answers to explicit questions asked of
``model: auto``, the model's part in word problems, refusals of adversarial input, and
questions that are not math staying away from it. (benchmarks/math_specialist.py measures
the same against `vllm serve` on a hundred questions.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.http import ask
from tests.helpers.math_cases import ADVERSARIAL, PWNED, assert_refused

EXPLICIT = [
    ("What is 4821 times 3977?", "19173117"),
    ("What is 689 × 5417?", "3732313"),
    ("Multiply 2365 by 918.", "2171070"),
    ("What is 48213 + 9977 + 31?", "58221"),
    ("What is the sum of 1234, 5678 and 91011?", "97923"),
    ("Solve for x: 7x + 12 = 138.", "x = 18"),
    ("Find x if 13x - 45 = 72.", "x = 9"),
    ("Solve 9x + 4 = 5x + 64.", "x = 15"),
]


@pytest.mark.parametrize(("question", "result"), EXPLICIT)
def test_explicit_questions_get_exact_answers_through_auto(client, question, result):
    resp = ask(client, question, max_tokens=160)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["model"] == "math"  # the router sent it there
    text = body["choices"][0]["message"]["content"]
    assert text.splitlines()[0].endswith(result), text
    policy = body["mixserve"]["policy"]
    assert policy["method"] == "symbolic"
    assert body["usage"]["completion_tokens"] > 0 and body["usage"]["cost"]["total_usd"] > 0


def test_a_word_problem_is_answered_by_the_model_with_or_without_an_expression(client):
    """The real model writes the expression (or cannot); either way an answer arrives,
    and the response says which way it came."""
    question = "A box holds 24 pencils. How many pencils are in 7 boxes?"
    resp = ask(client, question, model="math", max_tokens=96)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    method = body["mixserve"]["policy"]["method"]
    text = body["choices"][0]["message"]["content"]
    assert method in ("program_aided", "unverified") and text.strip()
    if method == "program_aided":
        assert "The question as an expression:" in text
    # usage counts the model's work (its expression, its answer), not zero as a lookup would
    assert body["usage"]["completion_tokens"] > 0


def test_math_it_cannot_read_gets_the_models_answer_not_an_error(client):
    resp = ask(client, "Prove that the square root of two is irrational.", model="math")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    # whatever the 270M model makes of it (here, often a blank line), it is the model's
    # answer, marked so, after its attempt at an expression
    assert body["mixserve"]["policy"]["method"] in ("unverified", "program_aided")
    assert body["choices"][0]["finish_reason"] in ("stop", "length")
    assert body["usage"]["completion_tokens"] > 0


@pytest.mark.parametrize(("question", "reason"), ADVERSARIAL)
def test_adversarial_input_is_refused_quickly_and_never_run(client, question, reason):
    assert_refused(client, question, reason)
    # routed (auto): wherever it goes, never a 5xx and never run
    routed = ask(client, question, max_tokens=16)
    assert routed.status_code < 500, routed.text
    assert not Path(PWNED).exists()


def test_questions_that_are_not_math_never_reach_it(client):
    for question in (
        "What is the capital of France?",
        "Who wrote the novel Pride and Prejudice?",
        "Write a Python function that reverses a list.",
    ):
        body = ask(client, question, max_tokens=8).json()
        assert body["model"] != "math", question
        assert "method" not in body["mixserve"]["policy"]
