"""Routing heads, registered by name. A head turns query embeddings into per-specialist scores.

``nearest_centroid``: each specialist is the mean of its (centered, unit-length) example
embeddings; a query's scores are the softmax of its cosine similarity to each centroid
over ``temperature``. Centering by the mean of all examples removes the direction every
LM hidden state shares (anisotropy), without which all cosines sit near 1.
"""

from __future__ import annotations

import abc
from collections.abc import Callable

import numpy as np


class RoutingHead(abc.ABC):
    @abc.abstractmethod
    def fit_examples(self, names: list[str], examples: list[np.ndarray]) -> None:
        """``examples[i]`` holds the example embeddings of specialist ``names[i]``."""

    @abc.abstractmethod
    def scores(self, queries: np.ndarray) -> np.ndarray:
        """Rows of probabilities over specialists, in the order given to ``fit_examples``."""


_HEADS: dict[str, Callable[..., RoutingHead]] = {}


def register_head(name: str) -> Callable[[Callable[..., RoutingHead]], Callable[..., RoutingHead]]:
    def add(factory: Callable[..., RoutingHead]) -> Callable[..., RoutingHead]:
        if name in _HEADS:
            raise ValueError(f"routing head {name!r} is already registered")
        _HEADS[name] = factory
        return factory

    return add


def head_names() -> list[str]:
    return sorted(_HEADS)


def build_head(name: str, **kwargs: float) -> RoutingHead:
    try:
        return _HEADS[name](**kwargs)
    except KeyError:
        raise ValueError(
            f"unknown routing head {name!r}; known: {', '.join(head_names())}"
        ) from None


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


@register_head("nearest_centroid")
class NearestCentroidHead(RoutingHead):
    def __init__(self, temperature: float = 0.05) -> None:
        self.temperature = temperature
        self.center: np.ndarray | None = None
        self.centroids: np.ndarray | None = None

    def fit_examples(self, names: list[str], examples: list[np.ndarray]) -> None:
        if len(names) != len(examples) or not names:
            raise ValueError("one non-empty example matrix per specialist is required")
        if any(len(e) == 0 for e in examples):
            raise ValueError("every specialist needs at least one example")
        self.center = np.concatenate(examples).mean(axis=0)
        rows = [_unit(_unit(e - self.center).mean(axis=0)) for e in examples]
        self.centroids = np.stack(rows)

    def scores(self, queries: np.ndarray) -> np.ndarray:
        if self.centroids is None or self.center is None:
            raise RuntimeError("head not fitted")
        sims = _unit(queries - self.center) @ self.centroids.T
        return softmax(sims / self.temperature)
