"""The symbolic engine's reading and solving, in-process: what it finds in questions,
the exact answers and steps it gives, and the limits that make it refuse."""

from __future__ import annotations

import random
import time

import pytest

from specialists.symbolic import Limits, evaluate, work
from specialists.symbolic.parse import parse
from specialists.symbolic.problems import find

LIMITS = Limits()


@pytest.mark.parametrize(
    ("question", "first_line"),
    [
        ("What is 17 times 23?", "17 * 23 = 391"),
        ("What is 4,821 × 3,977?", "4821 * 3977 = 19173117"),
        ("Multiply 4821 by 3977.", "4821 * 3977 = 19173117"),
        ("What is the product of 12 and 13?", "12 * 13 = 156"),
        ("What is the sum of 123, 456 and 789?", "123 + 456 + 789 = 1368"),
        ("Add 1200 and 34.", "1200 + 34 = 1234"),
        ("Compute 2^10.", "2**10 = 1024"),
        ("What is 0.1 + 0.2?", "0.1 + 0.2 = 0.3"),
        ("What is 7/3?", "7/3 = 7/3 (about 2.333333333333)"),
        ("What is sqrt(8)?", "sqrt(8) = 2*sqrt(2) (about 2.828427124746)"),
        ("Solve for x: 3x + 5 = 20.", "x = 5"),
        ("Find x if 7x - 12 = 3x + 20", "x = 8"),
        ("Solve 2(x + 3) = 14", "x = 4"),
        ("Solve x + y = 10 and x - y = 2", "x = 6, y = 4"),
        ("Solve x**2 = 4", "x = -2 or x = 2"),
        ("Solve 2x + 1 = 2x", "no solution"),
        ("Solve x = x", "every value of x is a solution"),
        ("What is the derivative of x squared?", "d/dx (x**2) = 2*x"),
        ("d/dx x**3", "d/dx (x**3) = 3*x**2"),
        ("Integrate x**2 from 0 to 3", "The integral of x**2 from 0 to 3 is 9"),
        ("What is the integral of sin(x)?", "The integral of sin(x) dx is -cos(x) + C"),
        (
            "What is the limit of sin(x)/x as x approaches 0?",
            "The limit of sin(x)/x as x -> 0 is 1",
        ),
        ("Here is one for you. What is 6 * 7?", "6 * 7 = 42"),
    ],
)
def test_explicit_math_is_solved_exactly_with_steps(question: str, first_line: str) -> None:
    outcome = work(question, LIMITS)
    assert outcome.status == "solved", outcome
    lines = outcome.text.splitlines()
    assert lines[0] == first_line
    assert lines[2].startswith("Steps")
    assert lines[3].startswith("1. ")


def test_random_products_sums_and_linear_equations_are_all_right() -> None:
    rng = random.Random(16)
    for _ in range(200):
        a, b, c = rng.randint(100, 99999), rng.randint(100, 99999), rng.randint(1, 999)
        assert work(f"What is {a} times {b}?", LIMITS).result == str(a * b)
        assert work(f"What is {a} + {b} + {c}?", LIMITS).result == str(a + b + c)
        k, x, m = rng.randint(2, 40), rng.randint(-50, 50), rng.randint(-500, 500)
        assert work(f"Solve for x: {k}x + {m} = {k * x + m}", LIMITS).result == f"x = {x}"


@pytest.mark.parametrize(
    "question",
    [
        "Janet has 3 apples and buys 5 more, then eats 2. How many apples does she have?",
        "Compute the area of a circle with radius 4.",
        "What is love?",
        "Is the interval open?",
        "Janet's apples cost 3 dollars.",
        "What is 15% of 80?",
        "Why is the sky blue?",
        "",
    ],
)
def test_questions_without_a_formula_yield_nothing(question: str) -> None:
    assert find(question) is None
    assert work(question, LIMITS).status == "none"


@pytest.mark.parametrize(
    ("question", "reason"),
    [
        ("9**9**9**9", "exponent 387420489 is past the limit of 1000"),
        ("What is " + " + ".join(str(i) for i in range(10_000)) + "?", "characters long"),
        ("(" * 500 + "1" + ")" * 500, "nests deeper than 24"),
        ("What is __import__('os')?", "this is code"),
        ("__import__('os').system('touch /tmp/pwned')", "this is code"),
        ("What is os.system('ls')?", "this is code"),
        ("(lambda: 1)()", "this is code"),
        ("What is factorial(100000)?", "factorial of 100000"),
        ("What is 10**5000 * 10**5000?", "exponent 5000"),
        ("What is 999999**999?", "digits"),
        ("What is 1/0?", "division by zero"),
        ("What is (1/10**900)**900?", "digits"),  # tiny numbers have digits too
        ("What is (10**999/3)**999?", "digits"),
        ("What is (10**999 + 0.5)**(1/2)**(-10)?", "exponent 1024"),
    ],
)
def test_adversarial_input_is_refused_quickly_with_a_reason(question: str, reason: str) -> None:
    started = time.perf_counter()
    outcome = work(question, LIMITS)
    elapsed = time.perf_counter() - started
    assert outcome.status == "refused", outcome
    assert reason in outcome.text
    assert outcome.text.startswith("I cannot work on this:")
    assert elapsed < 1.0


def test_the_parser_never_evaluates_code(tmp_path) -> None:
    marker = tmp_path / "ran"
    for text in (f"__import__('pathlib').Path('{marker}').touch()", "open('x')", "eval('1')"):
        with pytest.raises(ValueError, match="code"):
            parse(text, LIMITS)
    assert not marker.exists()


def test_unknown_names_and_functions_are_refused_not_guessed() -> None:
    with pytest.raises(ValueError, match="not a known mathematical function"):
        parse("gamma(3)", LIMITS)
    with pytest.raises(ValueError, match="variables are single letters"):
        parse("apples + 3", LIMITS)
    with pytest.raises(ValueError, match="no keyword arguments"):
        parse("log(8, base=2)", LIMITS)


def test_a_model_written_expression_is_evaluated_only_when_it_is_a_number() -> None:
    assert evaluate("4 * 12 - 9", LIMITS).result == "39"
    assert evaluate("20 - 20 * 15 / 100.", LIMITS).result == "17"
    assert evaluate("pi * 4**2", LIMITS).result.startswith("16*pi (about 50.26")
    assert evaluate("3 apples", LIMITS).status == "none"
    assert evaluate("x + 1", LIMITS).status == "none"
    assert evaluate("9**9**9", LIMITS).status == "refused"


def test_terminating_fractions_are_written_out_exactly() -> None:
    import sympy as sp

    from specialists.symbolic.solve import show

    assert show(sp.Rational(3, 10)) == "0.3"
    assert show(sp.Rational(-1, 8)) == "-0.125"
    assert show(sp.Rational(1, 2**20)) == "0.00000095367431640625"  # every digit, none rounded
    assert show(sp.Rational(123456789, 1000)) == "123456.789"
    assert show(sp.Rational(7, 3)).startswith("7/3 (about 2.33")
    assert show(sp.Rational(1, 2**60)).startswith("1/1152921504606846976")  # past 40 places
