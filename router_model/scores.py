"""Score tables: how well each candidate model answered each query (JSONL).

One object a line: ``{"query": str, "scores": {model: quality in [0, 1]}, "credit"?: str}``.
The credit rule says what a pick earns (RouterDC's evaluation):

- ``fraction``: the pick earns the model's score (share of sampled answers that were right);
- ``positive``: the pick earns 1 when the model's score is above 0, else 0.

Lines without ``credit`` use ``fraction`` (0/1 correctness tables are the same either way).
Every problem is reported with its file and line number.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CREDIT_RULES = ("fraction", "positive")


class ScoreTableError(ValueError):
    """A score table that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class ScoreTable:
    """One file's rows: ``scores[i, j]`` is model ``models[j]``'s quality on ``queries[i]``."""

    name: str
    queries: list[str]
    models: list[str]
    scores: np.ndarray
    credit: list[str]

    def __len__(self) -> int:
        return len(self.queries)

    def earned(self) -> np.ndarray:
        """What picking each model earns on each query, under each line's credit rule."""
        positive = np.array([c == "positive" for c in self.credit])[:, None]
        return np.where(positive, (self.scores > 0).astype(np.float64), self.scores)

    def with_models(self, models: Sequence[str]) -> ScoreTable:
        """The same rows, columns reordered (and narrowed) to ``models``."""
        missing = [m for m in models if m not in self.models]
        if missing:
            raise ScoreTableError(f"{self.name}: no scores for {', '.join(missing)}")
        cols = [self.models.index(m) for m in models]
        return ScoreTable(self.name, self.queries, list(models), self.scores[:, cols], self.credit)

    def subset(self, rows: Sequence[int] | np.ndarray) -> ScoreTable:
        idx = np.asarray(rows, dtype=np.int64)
        return ScoreTable(
            self.name,
            [self.queries[i] for i in idx],
            self.models,
            self.scores[idx],
            [self.credit[i] for i in idx],
        )


def _line_error(path: Path, number: int, message: str) -> ScoreTableError:
    return ScoreTableError(f"{path}:{number}: {message}")


def _parse_line(path: Path, number: int, text: str) -> tuple[str, dict[str, float], str]:
    try:
        row = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _line_error(path, number, f"invalid JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise _line_error(path, number, "expected a JSON object")
    query, scores, credit = row.get("query"), row.get("scores"), row.get("credit", "fraction")
    if not isinstance(query, str) or not query.strip():
        raise _line_error(path, number, "'query' must be a non-empty string")
    if not isinstance(scores, dict) or not scores:
        raise _line_error(path, number, "'scores' must be a non-empty object of model: quality")
    clean: dict[str, float] = {}
    for model, value in scores.items():
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise _line_error(path, number, f"score of {model!r} must be a number in [0, 1]")
        clean[model] = float(value)
    if credit not in CREDIT_RULES:
        raise _line_error(path, number, f"'credit' must be one of {', '.join(CREDIT_RULES)}")
    return query, clean, credit


def read_score_table(path: str | Path, models: Sequence[str] | None = None) -> ScoreTable:
    """Read one JSONL score table. Every line must score the same models (or ``models``)."""
    file = Path(path)
    try:
        # split on "\n" only: str.splitlines() also breaks on U+0085 and U+2028, which JSON
        # strings may contain raw (the RouterDC MMLU table does).
        lines = file.read_text(encoding="utf-8").split("\n")
    except FileNotFoundError:
        raise ScoreTableError(f"{file}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScoreTableError(f"{file}: cannot read ({exc})") from None
    queries: list[str] = []
    rows: list[list[float]] = []
    credits: list[str] = []
    expected = list(models) if models is not None else None
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        query, scores, credit = _parse_line(file, number, text)
        if expected is None:
            expected = sorted(scores)
        if set(scores) != set(expected):
            missing = sorted(set(expected) - set(scores))
            extra = sorted(set(scores) - set(expected))
            parts = [f"missing {', '.join(missing)}"] if missing else []
            parts += [f"unexpected {', '.join(extra)}"] if extra else []
            raise _line_error(file, number, "models differ from the table's: " + "; ".join(parts))
        queries.append(query)
        rows.append([scores[m] for m in expected])
        credits.append(credit)
    if not queries or expected is None:
        raise ScoreTableError(f"{file}: no rows")
    return ScoreTable(file.stem, queries, expected, np.array(rows, dtype=np.float64), credits)


def read_score_tables(paths: Sequence[str | Path]) -> list[ScoreTable]:
    """Read several tables; all must score the same set of models, and names must differ."""
    if not paths:
        raise ScoreTableError("no score files given")
    tables: list[ScoreTable] = []
    for path in paths:
        models = tables[0].models if tables else None
        tables.append(read_score_table(path, models))
    names = [t.name for t in tables]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ScoreTableError(f"score files share a name: {', '.join(dupes)}")
    return tables


def read_queries(path: Path, limit: int | None = None) -> list[str]:
    """The ``query`` of each JSON line of a score table (or any JSONL of queries)."""
    try:
        # split on newlines only: str.splitlines() also splits inside JSON strings that
        # hold U+2028 or U+0085, which real prompts do
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ScoreTableError(f"{path}: cannot read ({reason})") from None
    queries: list[str] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            query = json.loads(line)["query"]
        except (ValueError, KeyError, TypeError):
            raise ScoreTableError(f"{path}:{number}: not a JSON object with a 'query'") from None
        if not isinstance(query, str) or not query.strip():
            raise ScoreTableError(f"{path}:{number}: 'query' is not a non-empty string")
        queries.append(query)
        if limit is not None and len(queries) >= limit:
            break
    if not queries:
        raise ScoreTableError(f"{path}: no queries")
    return queries
