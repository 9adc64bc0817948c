"""The program-aided path: the model is asked for one arithmetic expression that answers
a word problem, and the expression is checked against the question before the worker
evaluates it: every number in it must come from the question (or be a common unit
factor such as 7 days or 60 minutes), so that a number the model made up is not passed
off as an exact answer. Its answer names the expression, so a reader can check it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from specialists.conversation import chat_messages

PROGRAM_SYSTEM = (
    "Write one arithmetic expression whose value answers the question. Use only numbers, "
    "+ - * / and parentheses. If no single number answers it, write: none"
)
# question, expression: the worked examples the model is shown before the question
PROGRAM_EXAMPLES: Sequence[tuple[str, str]] = (
    (
        "Tom has 4 boxes with 12 pencils in each. He gives away 9 pencils. "
        "How many pencils does he have left?",
        "4 * 12 - 9",
    ),
    ("A bus carries 38 people and 15 get off at the first stop. How many are left?", "38 - 15"),
    ("Why is the sky blue?", "none"),
    ("Sara reads 25 pages a day. How many pages does she read in 2 weeks?", "25 * 7 * 2"),
    ("72 cookies are packed into bags of 8. How many bags are filled?", "72 / 8"),
    (
        "Lena buys 3 notebooks at 4 dollars each and a pen for 2 dollars. How much does she spend?",
        "3 * 4 + 2",
    ),
)
PROGRAM_MAX_TOKENS = 40
# factors a question implies without writing them: days, hours, minutes, months, percent...
UNIT_FACTORS = frozenset({1, 2, 7, 10, 12, 24, 52, 60, 100, 365, 1000})
_SPELLED = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "twenty": 20, "thirty": 30,
    "hundred": 100, "dozen": 12, "half": 2, "twice": 2, "double": 2, "triple": 3,
    "quarter": 4, "third": 3,
}  # fmt: skip
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def program_messages(question: str) -> list[dict[str, Any]]:
    """The worked examples, then ``question``, as chat messages for the model's template."""
    turns: list[tuple[str, str]] = []
    for q, expression in PROGRAM_EXAMPLES:
        turns += [("user", q), ("assistant", expression)]
    turns.append(("user", question))
    return chat_messages(PROGRAM_SYSTEM, turns)


def numbers_in(text: str) -> set[Fraction]:
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    found = {Fraction(n) for n in _NUMBER.findall(text)}
    found |= {Fraction(v) for w, v in _SPELLED.items() if re.search(rf"\b{w}\b", text, re.I)}
    return found


def ungrounded(expression: str, question: str) -> list[str]:
    """The numbers of ``expression`` that neither the question nor a unit factor gives."""
    given = numbers_in(question) | {Fraction(u) for u in UNIT_FACTORS}
    return [n for n in _NUMBER.findall(expression) if Fraction(n) not in given]


def program_answer(expression: str, result: str) -> str:
    return "\n".join(
        [
            result,
            "",
            "Steps (the model wrote the expression, the symbolic engine evaluated it exactly):",
            f"1. The question as an expression: {expression}",
            f"2. Evaluated exactly: {expression} = {result}",
        ]
    )
