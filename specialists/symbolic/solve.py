"""Solving what ``problems.find`` found, exactly, and saying how: the answer's first line
is the result, the lines after it the steps taken. Runs in the worker process
(``worker``), under its clock and memory cap; these functions are plain and pure so that
tests call them directly too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import sympy as sp

from specialists.symbolic.limits import Limits, Refused
from specialists.symbolic.parse import parse
from specialists.symbolic.problems import Problem, find


@dataclass(frozen=True)
class Outcome:
    status: str  # solved | refused | none (nothing found, or nothing it can solve)
    text: str = ""  # the answer (solved), or the reason (refused, none)
    result: str = ""  # the result alone, e.g. "19173117" or "x = 5"
    kind: str = ""  # the problem's kind, when one was found

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def show(value: Any) -> str:
    """A value as people read it: exact, with a decimal beside it when not a whole number."""
    if value.is_Rational and not value.is_Integer:
        decimal = _exact_decimal(int(value.p), int(value.q))
        if decimal is not None:
            return decimal
    text = sp.sstr(value)
    if value.is_number and not value.is_Integer and value.is_finite and value.is_real:
        decimal = sp.N(value, 15)
        approx = sp.sstr(decimal.round(12) if decimal.is_Float else decimal)
        if approx != text:
            text += f" (about {approx.rstrip('0').rstrip('.') if '.' in approx else approx})"
    return text


def _exact_decimal(p: int, q: int, most: int = 40) -> str | None:
    """p/q written out exactly in decimals, when it ends within ``most`` places (only 2s
    and 5s divide q); else None."""
    twos = fives = 0
    rest = q
    while rest % 2 == 0:
        rest, twos = rest // 2, twos + 1
    while rest % 5 == 0:
        rest, fives = rest // 5, fives + 1
    places = max(twos, fives)
    if rest != 1 or places > most:
        return None
    digits = str(abs(p) * 10**places // q).rjust(places + 1, "0")
    whole, fraction = digits[:-places], digits[-places:].rstrip("0")
    return f"{'-' if p < 0 else ''}{whole}.{fraction}"


def work(question: str, limits: Limits) -> Outcome:
    """The question's mathematics found and solved, refused, or not there."""
    try:
        problem = find(question)
    except RecursionError:
        return Outcome("refused", "the question nests too deeply to read")
    if problem is None:
        return Outcome("none", "no formula in the question")
    return solve(problem, limits)


def solve(problem: Problem, limits: Limits) -> Outcome:
    try:
        return _SOLVERS[problem.kind](problem, limits)
    except Refused as exc:
        return Outcome("refused", f"I cannot work on this: {exc}.", kind=problem.kind)
    except (RecursionError, MemoryError, OverflowError):
        return Outcome(
            "refused", "I cannot work on this: it is too large to solve.", kind=problem.kind
        )
    except Exception as exc:  # noqa: BLE001 - SymPy's many errors: not solved, the model answers
        return Outcome("none", f"{problem.kind} not solved: {exc}", kind=problem.kind)


def evaluate(expression: str, limits: Limits) -> Outcome:
    """A model-written expression for a word problem: a number, or nothing."""
    text = expression.strip().rstrip(".").strip()
    try:
        value = parse(text, limits)
    except Refused as exc:
        return Outcome("refused", str(exc))
    except (SyntaxError, TypeError, ValueError, RecursionError, MemoryError) as exc:
        return Outcome("none", f"not an expression: {exc}")
    if not getattr(value, "is_number", False) or value.free_symbols:
        return Outcome("none", "the expression has unknowns")
    value = sp.nsimplify(value) if value.is_Float else sp.simplify(value)
    if not value.is_finite:
        return Outcome("none", "the expression has no finite value")
    return Outcome("solved", show(value), show(value), "program")


def _variable(problem: Problem, expr: Any) -> Any:
    if problem.variable:
        return sp.Symbol(problem.variable)
    free = sorted(expr.free_symbols, key=str)
    if len(free) == 1:
        return free[0]
    if not free:
        return sp.Symbol("x")
    raise ValueError(f"say which variable: it has {', '.join(map(str, free))}")


def _expression(problem: Problem, limits: Limits) -> Outcome:
    expr = parse(problem.formula, limits)
    steps = [f"Read the expression: {problem.formula.strip()}"]
    if expr.free_symbols:
        value = sp.simplify(expr)
        steps.append(f"Simplified it: {sp.sstr(value)}")
    else:
        value = sp.simplify(expr) if not expr.is_Integer else expr
        steps.append(f"Evaluated it exactly: {show(value)}")
    result = show(value)
    return _answer(f"{problem.formula.strip()} = {result}", steps, result, problem.kind)


def _equations(problem: Problem, limits: Limits) -> Outcome:
    sides = [f.split("=") for f in problem.formula.split(", ")]
    eqs = [
        sp.Eq(parse(left, limits), parse(right, limits), evaluate=False) for left, right in sides
    ]
    moved = [sp.expand(e.lhs - e.rhs) for e in eqs]
    free = sorted(set().union(*(e.lhs.free_symbols | e.rhs.free_symbols for e in eqs)), key=str)
    if problem.variable:
        unknowns = [sp.Symbol(problem.variable)]
    elif len(free) <= len(eqs):
        unknowns = free
    else:
        raise ValueError(f"say which unknowns: it has {', '.join(map(str, free))}")
    if not unknowns:
        raise ValueError("the equation has no unknown")
    shown = [f"{sp.sstr(e.lhs)} = {sp.sstr(e.rhs)}" for e in eqs]
    what = "equation" if len(eqs) == 1 else "system"
    steps = [f"Read the {what}: {'; '.join(shown)}"]
    steps.append("Moved every term to the left: " + "; ".join(f"{sp.sstr(m)} = 0" for m in moved))
    names = ", ".join(map(str, unknowns))
    solutions = sp.solve(moved, unknowns, dict=True)
    if not solutions:
        if all(m == 0 for m in moved):
            result = f"every value of {names} is a solution"
        else:
            result = "no solution"
    else:
        parts = []
        for sol in solutions:
            if not all(u in sol for u in unknowns):
                raise ValueError("the solution is not in closed form")
            parts.append(", ".join(f"{u} = {show(sol[u])}" for u in unknowns))
        result = " or ".join(parts)
    steps.append(f"Solved for {names}: {result}")
    return _answer(result, steps, result, problem.kind)


def _derivative(problem: Problem, limits: Limits) -> Outcome:
    expr = parse(problem.formula, limits)
    var = _variable(problem, expr)
    value = sp.simplify(sp.diff(expr, var))
    steps = [
        f"Read the function: {sp.sstr(expr)}",
        f"Differentiated with respect to {var}: {sp.sstr(sp.diff(expr, var))}",
        f"Simplified: {sp.sstr(value)}",
    ]
    result = sp.sstr(value)
    return _answer(f"d/d{var} ({sp.sstr(expr)}) = {result}", steps, result, problem.kind)


def _integral(problem: Problem, limits: Limits) -> Outcome:
    expr = parse(problem.formula, limits)
    var = _variable(problem, expr)
    anti = sp.integrate(expr, var)
    if anti.has(sp.Integral):
        raise NotImplementedError("no closed form found")
    steps = [f"Read the integrand: {sp.sstr(expr)}", f"An antiderivative: {sp.sstr(anti)}"]
    if problem.bounds:
        a, b = (parse(x, limits) for x in problem.bounds)
        value = sp.simplify(sp.integrate(expr, (var, a, b)))
        steps.append(f"Evaluated from {sp.sstr(a)} to {sp.sstr(b)}: {show(value)}")
        result = show(value)
        head = f"The integral of {sp.sstr(expr)} from {sp.sstr(a)} to {sp.sstr(b)} is {result}"
    else:
        result = f"{sp.sstr(anti)} + C"
        head = f"The integral of {sp.sstr(expr)} d{var} is {result}"
    return _answer(head, steps, result, problem.kind)


def _limit(problem: Problem, limits: Limits) -> Outcome:
    expr = parse(problem.formula, limits)
    var = sp.Symbol(problem.variable)
    point = parse(problem.bounds[0], limits)
    value = sp.limit(expr, var, point)
    if value.has(sp.Limit):
        raise NotImplementedError("no closed form found")
    steps = [f"Read the function: {sp.sstr(expr)}", f"Took the limit as {var} -> {point}"]
    result = show(value)
    return _answer(
        f"The limit of {sp.sstr(expr)} as {var} -> {point} is {result}", steps, result, problem.kind
    )


def _answer(head: str, steps: list[str], result: str, kind: str) -> Outcome:
    lines = [head, "", "Steps (solved exactly by the symbolic engine):"]
    lines += [f"{i}. {s}" for i, s in enumerate(steps, 1)]
    return Outcome("solved", "\n".join(lines), result, kind)


_SOLVERS = {
    "expression": _expression,
    "equations": _equations,
    "derivative": _derivative,
    "integral": _integral,
    "limit": _limit,
}
