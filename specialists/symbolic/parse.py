"""A formula's text to a SymPy expression without ``eval``: Python's parser reads it into
a syntax tree, and only a whitelist of nodes (numbers, one-letter variables, arithmetic,
calls of listed functions) is turned into SymPy objects, by hand, checking the limits
before SymPy evaluates anything. SymPy's own ``parse_expr``/``sympify`` call ``eval`` and
are never used on user text.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from typing import Any

import sympy as sp

from specialists.symbolic.limits import Limits, Refused

# the functions a formula may call, by the names people write
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": sp.sqrt,
    "cbrt": sp.cbrt,
    "root": sp.root,
    "exp": sp.exp,
    "log": sp.log,
    "ln": sp.log,
    "sin": sp.sin,
    "cos": sp.cos,
    "tan": sp.tan,
    "asin": sp.asin,
    "acos": sp.acos,
    "atan": sp.atan,
    "sinh": sp.sinh,
    "cosh": sp.cosh,
    "tanh": sp.tanh,
    "abs": sp.Abs,
    "floor": sp.floor,
    "ceil": sp.ceiling,
    "ceiling": sp.ceiling,
    "factorial": sp.factorial,
    "binomial": sp.binomial,
    "gcd": sp.gcd,
    "lcm": sp.lcm,
    "min": sp.Min,
    "max": sp.Max,
}
CONSTANTS: dict[str, Any] = {"pi": sp.pi, "e": sp.E, "oo": sp.oo, "inf": sp.oo}
NAMES = frozenset(FUNCTIONS) | frozenset(CONSTANTS)
_OPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Mod: lambda a, b: sp.Mod(a, b),
    ast.FloorDiv: lambda a, b: sp.floor(a / b),
}
_CODE_NODES = (ast.Attribute, ast.Subscript, ast.Lambda, ast.Starred, ast.NamedExpr)


def looks_like_code(tree: ast.AST) -> bool:
    """Attribute access, indexing, strings, lambdas, dunder names, or a call of anything
    but a plain name: code, never mathematics (and never run). A call of an unlisted
    name (``gamma(3)``) is refused by the builder as an unknown function."""
    for node in ast.walk(tree):
        if isinstance(node, _CODE_NODES):
            return True
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
            return True
        if isinstance(node, ast.Name) and "__" in node.id:
            return True
        if isinstance(node, ast.Call) and not isinstance(node.func, ast.Name):
            return True
    return False


def nesting(text: str) -> int:
    depth = deepest = 0
    for ch in text:
        if ch in "([":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]":
            depth -= 1
    return deepest


def check_text(text: str, limits: Limits) -> None:
    """The checks that need no parsing: size and nesting."""
    if len(text) > limits.max_chars:
        raise Refused(
            f"the expression is {len(text):,} characters long; the limit is {limits.max_chars:,}"
        )
    if nesting(text) > limits.max_depth:
        raise Refused(f"the expression nests deeper than {limits.max_depth} levels")


def parse(text: str, limits: Limits) -> sp.Expr:
    """``text`` (Python-style operators; ``^`` is a power) as a SymPy expression.

    Raises ``Refused`` for input past a limit or that is code, ``SyntaxError`` for text
    that is not a formula at all.
    """
    check_text(text, limits)
    tree = ast.parse(text.replace("^", "**").strip(), mode="eval")
    if looks_like_code(tree):
        raise Refused("this is code, not a mathematical expression; it is never run")
    count = sum(1 for _ in ast.walk(tree))
    if count > limits.max_nodes:
        raise Refused(f"the expression has {count} parts; the limit is {limits.max_nodes}")
    return _Builder(limits).build(tree.body)


class _Builder:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    def build(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return self._number(node.value)
        if isinstance(node, ast.Name):
            return self._name(node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
            value = self.build(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.BinOp):
            left, right = self.build(node.left), self.build(node.right)
            if isinstance(node.op, ast.Pow):
                return self._power(left, right)
            op = _OPS.get(type(node.op))
            if op is None:
                raise Refused(f"the operator {type(node.op).__name__} is not supported")
            if isinstance(node.op, (ast.Div, ast.Mod, ast.FloorDiv)) and right == 0:
                raise Refused("division by zero")
            return self._sized(op(left, right))
        if isinstance(node, ast.Call):
            return self._call(node)
        raise Refused(f"{type(node).__name__} is not part of a mathematical expression")

    def _number(self, value: object) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Refused(f"{value!r} is not a number")
        if isinstance(value, float):
            if not math.isfinite(value):
                raise Refused("the number is too large")
            return sp.Rational(repr(value))  # exact: 0.1 is 1/10
        return self._sized(sp.Integer(value))

    def _name(self, name: str) -> Any:
        if name in CONSTANTS:
            return CONSTANTS[name]
        if len(name) == 1 and name.isalpha():
            return sp.Symbol(name)
        if name in FUNCTIONS:
            raise Refused(f"{name} is a function: write {name}(...)")
        raise Refused(f"unknown name {name!r}: variables are single letters")

    def _power(self, base: Any, exponent: Any) -> Any:
        limit = self.limits.max_exponent
        if exponent.is_number:
            if not exponent.is_finite or abs(exponent) > limit:
                raise Refused(f"the exponent {_short(exponent)} is past the limit of {limit}")
            if base.is_number and base.is_finite and base != 0 and exponent.is_real:
                digits = abs(float(exponent)) * _log10_size(base)
                if digits > self.limits.max_digits:
                    raise Refused(
                        f"{_short(base)}**{_short(exponent)} has about {digits:,.0f} digits; "
                        f"the limit is {self.limits.max_digits:,}"
                    )
        return self._sized(base**exponent)

    def _call(self, node: ast.Call) -> Any:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            shown = ast.unparse(node.func)[:40]
            raise Refused(f"{shown!r} is not a known mathematical function")
        if node.keywords:
            raise Refused(f"{node.func.id}() takes no keyword arguments")
        args = [self.build(a) for a in node.args]
        name = node.func.id
        if name in ("factorial", "binomial"):
            for a in args:
                if a.is_number and abs(a) > self.limits.max_factorial:
                    raise Refused(
                        f"{name} of {_short(a)} is past the limit of {self.limits.max_factorial}"
                    )
        try:
            return self._sized(FUNCTIONS[name](*args))
        except TypeError:
            raise Refused(f"{name}() does not take {len(args)} arguments") from None

    def _sized(self, value: Any) -> Any:
        if isinstance(value, sp.Rational):  # an integer, or a fraction's two integers
            bits = max(value.p.bit_length(), value.q.bit_length())
            if bits > self.limits.max_digits * 3.33:
                raise Refused(f"a number has more than {self.limits.max_digits:,} digits")
        return value


def _log10_size(value: Any) -> float:
    """|log10 |value||: the digits a power of ``value`` gains per unit of exponent (a
    number too large for a float counts as infinitely large)."""
    try:
        if value.is_Rational:
            return abs(math.log10(abs(value.p)) - math.log10(value.q))
        return abs(math.log10(float(abs(value))))
    except (OverflowError, ValueError, TypeError):
        return math.inf


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 24 else f"a number of {len(text):,} digits"
