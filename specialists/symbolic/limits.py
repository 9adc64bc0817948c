"""What the symbolic engine refuses to work on, so that no input can make it hang or
exhaust memory: checked on the text before parsing, on the tree while it is built (before
SymPy evaluates anything), and by the clock and an address-space cap in the worker."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    max_chars: int = 2000  # characters of the formula found in a question
    max_nodes: int = 400  # operators, numbers, names and calls in its tree
    max_depth: int = 24  # nesting of parentheses and calls
    max_exponent: int = 1000  # |n| in x**n
    max_digits: int = 5000  # digits of any exact number made along the way
    max_factorial: int = 1000  # n in factorial(n), binomial(n, k)
    timeout_s: float = 2.0  # wall time of one solve in the worker
    memory_mb: int = 1024  # the worker's address-space cap beyond what it has at start


class Refused(ValueError):
    """The input is past a limit, or is not mathematics but code; the message says which."""
