"""Which prompts a load sends: groups of real queries (a score table each, by default),
drawn with weights; a skewed mix puts a chosen share on one group."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from router_model import scores


class MixError(ValueError):
    """A mix that cannot be built (a message fit for one line of the CLI)."""


ACK = "Noted."  # the assistant's turn after a context document


@dataclass(frozen=True)
class Prompt:
    group: str
    text: str
    context: str = ""  # a document sent as an earlier turn (a prefix prompts share)

    def messages(self) -> list[dict[str, str]]:
        turns = [{"role": "user", "content": self.text}]
        if self.context:
            turns[:0] = [
                {"role": "user", "content": self.context},
                {"role": "assistant", "content": ACK},
            ]
        return turns


def _group_name(path: Path) -> str:
    return path.stem.removesuffix("_train").removesuffix("_test")


def read_queries(path: Path, limit: int | None = None) -> list[str]:
    """The ``query`` of each JSON line of a score table (or any JSONL of queries)."""
    try:
        return scores.read_queries(path, limit)
    except scores.ScoreTableError as exc:
        raise MixError(str(exc)) from None


class QueryMix:
    def __init__(
        self, groups: Mapping[str, Sequence[str]], weights: Mapping[str, float] | None = None
    ) -> None:
        if not groups or any(not q for q in groups.values()):
            raise MixError("a mix needs at least one group, and every group a query")
        self.groups = {name: list(queries) for name, queries in groups.items()}
        raw = dict(weights) if weights else {name: 1.0 for name in self.groups}
        unknown = sorted(set(raw) - set(self.groups))
        if unknown:
            raise MixError(f"weights name groups the mix lacks: {', '.join(unknown)}")
        if any(w < 0 for w in raw.values()) or sum(raw.values()) <= 0:
            raise MixError("weights must be at least 0 and not all 0")
        total = sum(raw.values())
        self.weights = {name: raw.get(name, 0.0) / total for name in self.groups}

    @classmethod
    def from_files(cls, specs: Sequence[str], limit: int | None = None) -> QueryMix:
        """Groups from files: ``path`` (named by its stem, ``gsm8k_train.jsonl`` is
        ``gsm8k``) or ``name=path``."""
        groups: dict[str, list[str]] = {}
        for spec in specs:
            name, sep, path = spec.partition("=")
            file = Path(path) if sep else Path(spec)
            group = name if sep else _group_name(file)
            if group in groups:
                raise MixError(f"two files make the group {group!r}: name them NAME=PATH")
            groups[group] = read_queries(file, limit)
        return cls(groups)

    def skewed(self, group: str, share: float) -> QueryMix:
        """The same groups with ``share`` of the draws on ``group``, the rest spread over
        the others as before."""
        if group not in self.groups:
            raise MixError(f"no group {group!r} to skew to; groups: {', '.join(self.groups)}")
        if not 0 <= share <= 1:
            raise MixError(f"a skew share is between 0 and 1, not {share}")
        others = {n: w for n, w in self.weights.items() if n != group}
        rest = sum(others.values())
        if rest == 0 and share < 1:
            raise MixError("nothing else to put the rest of the draws on")
        weights = {n: (1 - share) * w / rest for n, w in others.items()} if rest else {}
        return QueryMix(self.groups, {**weights, group: share})

    def sample(self, rng: random.Random) -> Prompt:
        names = list(self.weights)
        group = rng.choices(names, weights=[self.weights[n] for n in names])[0]
        return Prompt(group, rng.choice(self.groups[group]))


class ContextMix:
    """Questions about shared documents: each prompt is one of ``documents`` (an earlier
    turn, so prompts about the same document share a long prefix) and one of
    ``questions``, drawn uniformly."""

    def __init__(
        self, documents: Sequence[str], questions: Sequence[str], group: str = "documents"
    ) -> None:
        if not documents or not questions:
            raise MixError("a context mix needs at least one document and one question")
        self.documents = list(documents)
        self.questions = list(questions)
        self.group = group

    def sample(self, rng: random.Random) -> Prompt:
        return Prompt(self.group, rng.choice(self.questions), rng.choice(self.documents))
