"""Model-level routing: query → scores per specialist, confidence and choice."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from router_model.heads import RoutingHead


@dataclass(frozen=True)
class SpecialistProfile:
    name: str
    description: str
    examples: Sequence[str]


@dataclass(frozen=True)
class RoutingDecision:
    choice: str
    scores: dict[str, float]
    confidence: float
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {
            "choice": self.choice,
            "scores": self.scores,
            "confidence": self.confidence,
            "reason": self.reason,
        }


Embed = Callable[[list[str]], np.ndarray]


class Router:
    """Routes with any embedding function and any fitted head.

    Confidence is the top score (a probability). Below ``min_confidence`` the query goes
    to ``fallback`` when one is configured.
    """

    def __init__(
        self,
        embed: Embed,
        head: RoutingHead,
        profiles: Sequence[SpecialistProfile],
        *,
        fallback: str | None = None,
        min_confidence: float = 0.0,
        head_name: str = "",
    ) -> None:
        if not profiles:
            raise ValueError("a router needs at least one specialist")
        self.embed = embed
        self.head = head
        self.names = [p.name for p in profiles]
        self.fallback = fallback
        self.min_confidence = min_confidence
        self.head_name = head_name
        examples = [embed([p.description, *p.examples]) for p in profiles]
        head.fit_examples(self.names, examples)

    def route_batch(self, queries: list[str]) -> list[RoutingDecision]:
        if not queries:
            return []
        probs = self.head.scores(self.embed(queries))
        return [self._decide(row) for row in probs]

    def route(self, query: str) -> RoutingDecision:
        return self.route_batch([query])[0]

    def _decide(self, row: np.ndarray) -> RoutingDecision:
        best = int(np.argmax(row))
        confidence = float(row[best])
        scores = {n: round(float(s), 6) for n, s in zip(self.names, row, strict=True)}
        choice, reason = self.names[best], f"{self.head_name}: highest score"
        if self.fallback is not None and confidence < self.min_confidence:
            choice = self.fallback
            reason = f"{self.head_name}: confidence {confidence:.3f} below {self.min_confidence}"
        return RoutingDecision(choice, scores, confidence, reason)
