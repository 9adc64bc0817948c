"""Engines by name. A config names its engine; tests inject the fake one the same way."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from specialists.engine import Adapter, SpecialistEngine

EngineFactory = Callable[..., SpecialistEngine]
_ENGINES: dict[str, EngineFactory] = {}


def register_engine(name: str, factory: EngineFactory) -> None:
    if name in _ENGINES:
        raise ValueError(f"engine {name!r} is already registered")
    _ENGINES[name] = factory


def engine_names() -> list[str]:
    return sorted(_ENGINES)


def build_engine(
    name: str,
    *,
    specialist: str,
    model: str | Path,
    max_model_len: int,
    engine_kwargs: dict[str, object],
    adapters: list[Adapter] | None = None,
) -> SpecialistEngine:
    """The engine ``name`` for ``model``, serving ``adapters`` (LoRA) beside it if any."""
    try:
        factory = _ENGINES[name]
    except KeyError:
        raise ValueError(f"unknown engine {name!r}; known: {', '.join(engine_names())}") from None
    return factory(
        specialist=specialist,
        model=str(model),
        max_model_len=max_model_len,
        engine_kwargs=dict(engine_kwargs),
        adapters=list(adapters or []),
    )


def _vllm(
    *,
    specialist: str,
    model: str,
    max_model_len: int,
    engine_kwargs: dict[str, object],
    adapters: list[Adapter],
) -> SpecialistEngine:
    from specialists.vllm_engine import VLLMEngine

    return VLLMEngine(model, max_model_len, engine_kwargs, adapters)


def _fake(
    *,
    specialist: str,
    model: str,
    max_model_len: int,
    engine_kwargs: dict[str, object],
    adapters: list[Adapter],
) -> SpecialistEngine:
    from specialists.fake_engine import FakeEngine

    def number(key: str, default: float) -> float:
        value = engine_kwargs.get(key, default)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError(f"fake engine: {key} must be a number, not {value!r}")
        return float(value)

    return FakeEngine(
        specialist,
        max_model_len,
        number("token_delay_s", 0.0),
        number("start_delay_s", 0.0),
        number("token_logprob", -0.1),
        adapters,
    )


register_engine("vllm", _vllm)
register_engine("fake", _fake)
