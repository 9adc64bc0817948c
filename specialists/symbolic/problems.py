"""Finding the mathematics in a question: an expression to evaluate, an equation or a
system to solve, a derivative, an integral or a limit, written in symbols or in the
words people use for them ("17 times 23", "the derivative of x squared", "solve for x:
3x + 5 = 20"). A question with no formula in it (a word problem) yields nothing here;
the engine then asks the model to write one.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from specialists.symbolic.parse import NAMES, looks_like_code


@dataclass(frozen=True)
class Problem:
    kind: str  # expression | equations | derivative | integral | limit
    formula: str  # the expression, or the equations joined by ", "
    variable: str = ""  # solve for / differentiate by / integrate over / limit in
    bounds: tuple[str, ...] = field(default_factory=tuple)  # integral (a, b); limit (point,)


_SYMBOLS = [
    ("\u00d7", "*"),
    ("\u22c5", "*"),
    ("\u00b7", "*"),
    ("\u00f7", "/"),
    ("\u2212", "-"),
    ("\u2013", "-"),
    ("\u00b2", "**2"),
    ("\u00b3", "**3"),
    ("\u221a", "sqrt"),
    ("\u03c0", "pi"),
    ("^", "**"),
]
_WORDS = [
    (r"\bmultiplied by\b", "*"),
    (r"\btimes\b", "*"),
    (r"\bplus\b", "+"),
    (r"\bminus\b", "-"),
    (r"\bdivided by\b", "/"),
    (r"\bsquared\b", "**2"),
    (r"\bcubed\b", "**3"),
    (r"\bto the power of\b", "**"),
    (r"\bsquare root of\b", "sqrt"),
    (r"\bmod(?:ulo)?\b", "%"),
]
_LEADS = re.compile(
    r"^(?:please\s+)?(?:what\s+is|what's|whats|compute|calculate|evaluate|simplify|"
    r"work\s+out|find(?:\s+the\s+value\s+of)?(?!\s+[a-z]\s+(?:if|when|such\s+that)\b)|determine|give\s+me|tell\s+me)\b\s*:?\s*",
    re.I,
)
_TAIL = re.compile(r"[\s?.!]*(?:\s+exactly)?[\s?.!]*$", re.I)
_GROUPED = re.compile(r"(?<=\d),(?=\d{3}\b)")  # 12,345 -> 12345
_IMPLICIT = [
    (re.compile(r"(\d)\s*([a-z(])"), r"\1*\2"),  # 3x, 2(x + 1)
    (re.compile(r"\)\s*([a-z0-9(])"), r")*\1"),  # (x + 1)(x - 1), (x)2
]
_VAR = r"([a-z])"
_DERIVATIVE = re.compile(
    rf"^(?:the\s+)?(?:derivative\s+of|differentiate)\s+(.+?)"
    rf"(?:\s+with\s+respect\s+to\s+{_VAR})?$",
    re.I,
)
_DDX = re.compile(rf"^d\s*/\s*d{_VAR}\s*(.+)$")
_INTEGRAL = re.compile(
    rf"^(?:the\s+)?(?:(?:definite\s+|indefinite\s+)?integral\s+of|integrate)\s+(.+?)"
    rf"(?:\s*d{_VAR})?(?:\s+(?:from|between)\s+(\S+)\s+(?:to|and)\s+(\S+))?$",
    re.I,
)
_LIMIT = re.compile(
    rf"^(?:the\s+)?limit\s+of\s+(.+?)\s+as\s+{_VAR}\s+(?:approaches|goes\s+to|tends\s+to|->|\u2192)"
    r"\s+(\S+)$",
    re.I,
)
_SOLVE = re.compile(rf"^(?:solve|find\s+{_VAR}\s+(?:if|when|such\s+that))\b", re.I)
_SOLVE_FOR = re.compile(rf"^solve(?:\s+for\s+{_VAR})?\s*:?\s*(.+)$", re.I)
_LISTS = [
    (re.compile(r"^(?:the\s+)?sum\s+of\s+(.+)$", re.I), "+"),
    (re.compile(r"^add\s+(?:up\s+)?(.+)$", re.I), "+"),
    (re.compile(r"^(?:the\s+)?product\s+of\s+(.+)$", re.I), "*"),
    (re.compile(r"^multiply\s+(.+)$", re.I), "*"),
]
_SEPARATORS = re.compile(r"\s*(?:,\s*and\s+|,|\s+and\s+|\s+by\s+)\s*", re.I)
_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")
_FORMULA_CHARS = re.compile(r"[0-9a-z+\-*/%().,=<>\s\[\]]+")
_OPERATOR = re.compile(r"[+\-*/%(=]")


def normalize(text: str) -> str:
    for a, b in _SYMBOLS:
        text = text.replace(a, b)
    for pattern, b in _WORDS:
        text = re.sub(pattern, f" {b} ", text, flags=re.I)
    text = _GROUPED.sub("", text)
    return re.sub(r"\s+", " ", text).strip()


def implicit_products(formula: str) -> str:
    """``3x`` -> ``3*x``, ``2(x+1)`` -> ``2*(x+1)``, ``(a)(b)`` -> ``(a)*(b)``."""
    for pattern, repl in _IMPLICIT:
        formula = pattern.sub(repl, formula)
    return formula


def is_formula(text: str) -> bool:
    """Symbols rather than words: every word is a one-letter variable or a known
    function, and an operator or a call holds it together. Text that parses as code
    (a call of something else, attributes, strings) counts too, so that it is refused
    with a reason rather than handed to the model."""
    if not text or not re.search(r"[0-9a-z]", text, re.I):
        return False
    lower = text.lower()
    if _FORMULA_CHARS.fullmatch(lower) and _OPERATOR.search(lower):
        words = re.findall(r"[a-z_][a-z_0-9]*", lower)
        if all(len(w) == 1 or w in NAMES for w in words):
            return True  # judged without parsing: a huge or deep one is refused, not parsed
    if len(text) > 20_000:
        return False
    try:
        tree = ast.parse(text.replace("^", "**").strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return looks_like_code(tree)


def find(question: str) -> Problem | None:
    """The mathematical content of the last line of ``question`` that has any, or None."""
    for line in reversed([ln for ln in question.strip().splitlines() if ln.strip()]):
        problem = _find_in(line)
        if problem is not None:
            return problem
    return None


def _find_in(line: str) -> Problem | None:
    text = normalize(line)
    # a sentence of context before the request: "Here is one. What is 3 * 4?"
    sentences = [s for s in re.split(r"(?<=[.?!])\s+(?=[A-Z])", text) if s]
    for sentence in reversed(sentences):
        problem = _find_in_sentence(sentence)
        if problem is not None:
            return problem
    return None


def _find_in_sentence(sentence: str) -> Problem | None:
    body = _TAIL.sub("", _LEADS.sub("", sentence.strip()))
    lower = body.lower()
    for finder in (_calculus, _equations, _lists):
        problem = finder(lower)
        if problem is not None:
            return problem
    formula = implicit_products(lower)
    return Problem("expression", formula) if is_formula(formula) else None


def _calculus(text: str) -> Problem | None:
    m = _DERIVATIVE.match(text) or _DDX.match(text)
    if m is not None:
        expr, var = (m.group(1), m.group(2)) if m.re is _DERIVATIVE else (m.group(2), m.group(1))
        expr = implicit_products(expr)
        return (
            Problem("derivative", expr, var or "") if is_formula(expr) or _one_name(expr) else None
        )
    m = _INTEGRAL.match(text)
    if m is not None:
        expr = implicit_products(m.group(1))
        bounds = tuple(b for b in (m.group(3), m.group(4)) if b)
        if is_formula(expr) or _one_name(expr):
            return Problem("integral", expr, m.group(2) or "", bounds)
        return None
    m = _LIMIT.match(text)
    if m is not None:
        expr = implicit_products(m.group(1))
        if is_formula(expr) or _one_name(expr):
            return Problem("limit", expr, m.group(2), (m.group(3),))
    return None


def _one_name(text: str) -> bool:
    return len(text.strip()) == 1 and text.strip().isalpha()


def _equations(text: str) -> Problem | None:
    if "=" not in text:
        return None
    variable = ""
    m = _SOLVE_FOR.match(text)
    if m is not None:
        variable, text = m.group(1) or "", m.group(2)
    elif _SOLVE.match(text):
        m2 = re.match(rf"^find\s+{_VAR}\s+(?:if|when|such\s+that)\s+(.+)$", text, re.I)
        if m2 is None:
            return None
        variable, text = m2.group(1), m2.group(2)
    parts = [p.strip() for p in re.split(r"\s*(?:;|,\s*and\s+|,|\s+and\s+)\s*", text) if p.strip()]
    formulas = [implicit_products(p) for p in parts]
    if not all("=" in f and f.count("=") == 1 and is_formula(f) for f in formulas):
        return None
    return Problem("equations", ", ".join(formulas), variable)


def _lists(text: str) -> Problem | None:
    for pattern, op in _LISTS:
        m = pattern.match(text)
        if m is None:
            continue
        items = [i for i in _SEPARATORS.split(m.group(1).strip()) if i]
        if len(items) >= 2 and all(_NUMBER.match(i) for i in items):
            return Problem("expression", f" {op} ".join(items))
    return None
