"""Model-level routing: query → predicted quality per specialist → cost-aware choice.

utility(s) = predicted quality(s) − λ · relative cost(s), where relative cost is the
specialist's expected cost per query over the most expensive specialist's (so λ reads as
"quality I would give up to avoid the most expensive specialist entirely"). λ comes from
config and may be overridden per request; a batch's utilities and choices are one
``kernels.Gating`` call, each query with its own λ. Confidence is the chosen specialist's predicted
quality; below ``min_confidence`` the query goes to ``fallback`` when one is configured.
With an ``EarlyExit`` the queries its probe is sure of are decided at its layer, the rest
at full depth; each decision says at which layer (``layer``) and by which head.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from kernels import Gating
from router_model.early_exit import EarlyExit
from router_model.heads import RoutingHead


@dataclass(frozen=True)
class SpecialistProfile:
    name: str
    description: str
    examples: Sequence[str]
    relative_cost: float = 0.0


@dataclass(frozen=True)
class RoutingDecision:
    choice: str
    scores: dict[str, float]
    confidence: float
    reason: str
    head: str = ""
    tradeoff: float = 0.0
    utilities: dict[str, float] = field(default_factory=dict)
    costs: dict[str, float] = field(default_factory=dict)
    layer: int = 0  # the router LLM layer the decision was made at
    group: dict[str, object] | None = None  # the head's account of the query's group, if any

    def as_dict(self) -> dict[str, object]:
        extra: dict[str, object] = {} if self.group is None else {"group": self.group}
        return {
            **extra,
            "choice": self.choice,
            "scores": self.scores,
            "utilities": self.utilities,
            "relative_costs": self.costs,
            "confidence": self.confidence,
            "head": self.head,
            "quality_cost_tradeoff": self.tradeoff,
            "reason": self.reason,
            "layer": self.layer,
        }


Embed = Callable[[list[str]], np.ndarray]
Note = dict[str, object] | None


def relative_costs(
    prices: Sequence[tuple[float, float]], tokens_in: float, tokens_out: float
) -> np.ndarray:
    """Expected cost per query of each (USD/Mtok in, USD/Mtok out), over the largest one."""
    costs = np.array([p_in * tokens_in + p_out * tokens_out for p_in, p_out in prices])
    top = costs.max() if len(costs) else 0.0
    return costs / top if top > 0 else np.zeros_like(costs)


class Router:
    """Routes with any embedding function and any fitted head.

    ``columns[i]`` is the head output column standing for specialist ``i`` (a learned
    head scores the models of its score tables; config maps them to specialists).
    """

    def __init__(
        self,
        embed: Embed,
        head: RoutingHead,
        profiles: Sequence[SpecialistProfile],
        *,
        columns: Sequence[int] | None = None,
        tradeoff: float = 0.0,
        fallback: str | None = None,
        min_confidence: float = 0.0,
        head_name: str = "",
        layer: int = 0,
        early_exit: EarlyExit | None = None,
    ) -> None:
        if not profiles:
            raise ValueError("a router needs at least one specialist")
        self.embed = embed
        self.head = head
        self.names = [p.name for p in profiles]
        self.costs = np.array([p.relative_cost for p in profiles], dtype=np.float64)
        self.columns = list(columns) if columns is not None else list(range(len(profiles)))
        if len(self.columns) != len(self.names):
            raise ValueError("one head column per specialist is required")
        self.tradeoff = tradeoff
        self.fallback = fallback
        self.min_confidence = min_confidence
        self.head_name = head_name
        self.layer = layer
        self.early_exit = early_exit
        self.gating = Gating(device="cpu")  # quality rows arrive as numpy, on the CPU

    def predict(self, queries: list[str]) -> np.ndarray:
        """Predicted quality, one row per query, one column per specialist."""
        return self.predict_exits(queries)[0]

    def predict_exits(self, queries: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Predicted quality, and which queries the early exit decided (none without one)."""
        quality, exited, _ = self._predict(queries)
        return quality, exited

    def _predict(self, queries: list[str]) -> tuple[np.ndarray, np.ndarray, list[Note]]:
        """Quality, exits, and the head's account of each query it decided (``explain``,
        for a head with groups: which one, how sure, how far)."""
        explain = getattr(self.head, "explain", None)
        told: list[list[Note]] = []

        def deep(x: np.ndarray) -> np.ndarray:
            if explain is not None:
                told.append(explain(x))
            return self.head.predict(x)[:, self.columns]

        if self.early_exit is None:
            quality, exited = deep(self.embed(queries)), np.zeros(len(queries), dtype=bool)
        else:
            quality, exited = self.early_exit.predict(queries, deep)
        notes: list[Note] = [None] * len(queries)
        for row, note in zip(np.flatnonzero(~exited), told[0] if told else [], strict=False):
            notes[int(row)] = note
        return quality, exited, notes

    def route_batch(
        self, queries: list[str], tradeoffs: Sequence[float | None] | None = None
    ) -> list[RoutingDecision]:
        if not queries:
            return []
        import torch

        quality, exited, notes = self._predict(queries)
        lambdas = [self.tradeoff if t is None else t for t in (tradeoffs or [None] * len(queries))]
        gate = self.gating(
            torch.from_numpy(np.ascontiguousarray(quality, dtype=np.float32)),
            torch.from_numpy(self.costs.astype(np.float32)),
            tradeoff=torch.tensor(lambdas, dtype=torch.float32),
        )
        best = gate.top_index[:, 0].tolist()
        return [
            self._decide(row, utility, choice, lam, bool(out), note)
            for row, utility, choice, lam, out, note in zip(
                quality, gate.utility.numpy(), best, lambdas, exited, notes, strict=True
            )
        ]

    def route(self, query: str, tradeoff: float | None = None) -> RoutingDecision:
        return self.route_batch([query], [tradeoff])[0]

    def _decide(
        self,
        quality: np.ndarray,
        utility: np.ndarray,
        best: int,
        tradeoff: float,
        exited: bool,
        note: Note = None,
    ) -> RoutingDecision:
        confidence = float(quality[best])
        scores = {n: round(float(s), 6) for n, s in zip(self.names, quality, strict=True)}
        utilities = {n: round(float(u), 6) for n, u in zip(self.names, utility, strict=True)}
        choice = self.names[best]
        reason = f"highest utility (quality - {tradeoff:g} x relative cost)"
        if self.fallback is not None and confidence < self.min_confidence:
            choice = self.fallback
            reason = f"confidence {confidence:.3f} below {self.min_confidence}: fallback"
        costs = {n: round(float(c), 6) for n, c in zip(self.names, self.costs, strict=True)}
        head, layer = self.head_name, self.layer
        if exited and self.early_exit is not None:
            head, layer = self.early_exit.head_name, self.early_exit.layer
        return RoutingDecision(
            choice, scores, confidence, reason, head, tradeoff, utilities, costs, layer, note
        )
