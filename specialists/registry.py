"""Engines by name. A config names its engine; tests inject the fake one the same way."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from specialists.engine import Adapter, SpecialistEngine

EngineFactory = Callable[..., SpecialistEngine]
_ENGINES: dict[str, EngineFactory] = {}
# solvers: engines that answer in front of a model engine, falling back to it
SolverFactory = Callable[..., SpecialistEngine]
_SOLVERS: dict[str, SolverFactory] = {}


def _register(
    table: dict[str, EngineFactory], kind: str, name: str, factory: EngineFactory
) -> None:
    if name in table:
        raise ValueError(f"{kind} {name!r} is already registered")
    table[name] = factory


def _factory(table: dict[str, EngineFactory], kind: str, name: str) -> EngineFactory:
    try:
        return table[name]
    except KeyError:
        known = ", ".join(sorted(table))
        raise ValueError(f"unknown {kind} {name!r}; known: {known}") from None


def register_engine(name: str, factory: EngineFactory) -> None:
    _register(_ENGINES, "engine", name, factory)


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
    tool_parser: str | None = None,
    tool_strict_level: str = "auto",
) -> SpecialistEngine:
    """The engine ``name`` for ``model``, serving ``adapters`` (LoRA) beside it if any,
    turning the model's text into tool calls with ``tool_parser`` (vLLM's, by name),
    their arguments held to the tools' schemas as ``tool_strict_level`` says."""
    return _factory(_ENGINES, "engine", name)(
        specialist=specialist,
        model=str(model),
        max_model_len=max_model_len,
        engine_kwargs=dict(engine_kwargs),
        adapters=list(adapters or []),
        tool_parser=tool_parser,
        tool_strict_level=tool_strict_level,
    )


def _vllm(
    *,
    specialist: str,
    model: str,
    max_model_len: int,
    engine_kwargs: dict[str, object],
    adapters: list[Adapter],
    tool_parser: str | None,
    tool_strict_level: str,
) -> SpecialistEngine:
    from specialists.vllm_engine import VLLMEngine

    return VLLMEngine(model, max_model_len, engine_kwargs, adapters, tool_parser, tool_strict_level)


def _fake(
    *,
    specialist: str,
    model: str,
    max_model_len: int,
    engine_kwargs: dict[str, object],
    adapters: list[Adapter],
    tool_parser: str | None,
    tool_strict_level: str,
) -> SpecialistEngine:
    from specialists.fake_engine import FakeEngine

    def number(key: str, default: float) -> float:
        value = engine_kwargs.get(key, default)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError(f"fake engine: {key} must be a number, not {value!r}")
        return float(value)

    answer_tokens = number("answer_tokens", 0)
    if answer_tokens < 0 or answer_tokens != int(answer_tokens):
        raise ValueError(
            f"fake engine: answer_tokens must be a whole number >= 0, not {answer_tokens}"
        )
    return FakeEngine(
        specialist,
        max_model_len,
        number("token_delay_s", 0.0),
        number("start_delay_s", 0.0),
        number("token_logprob", -0.1),
        adapters,
        int(answer_tokens),
    )


def register_solver(name: str, factory: SolverFactory) -> None:
    _register(_SOLVERS, "solver", name, factory)


def solver_names() -> list[str]:
    return sorted(_SOLVERS)


def build_solver(
    name: str, *, inner: SpecialistEngine, timeout_s: float | None = None
) -> SpecialistEngine:
    """The solver ``name`` in front of ``inner`` (the specialist's model engine, started
    and stopped by its owner); the solver's own ``start``/``shutdown`` are the caller's."""
    return _factory(_SOLVERS, "solver", name)(inner=inner, timeout_s=timeout_s)


def _symbolic(*, inner: SpecialistEngine, timeout_s: float | None) -> SpecialistEngine:
    from specialists.symbolic import Limits, SymbolicEngine

    limits = Limits() if timeout_s is None else Limits(timeout_s=timeout_s)
    return SymbolicEngine(inner, limits)


register_engine("vllm", _vllm)
register_engine("fake", _fake)
register_solver("symbolic", _symbolic)
