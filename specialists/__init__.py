"""Specialist engines: the engine contract, its vLLM and fake implementations, prompts.

Public API: ``SpecialistEngine``, ``GenerationRequest``, ``Adapter`` (LoRA), ``Chunk``,
``EngineLoad``, ``build_engine``, ``register_engine``, ``build_solver`` and
``register_solver`` (engines that answer in front of a model engine: ``symbolic``), and
the engine errors. (Model preparation is the ``weights`` package.)
"""

from specialists.engine import Adapter, Chunk, EngineLoad, GenerationRequest, SpecialistEngine
from specialists.errors import ContextLengthError, EngineOverloadedError, EngineUnhealthyError
from specialists.registry import build_engine, build_solver, register_engine, register_solver

__all__ = [
    "Adapter",
    "Chunk",
    "ContextLengthError",
    "EngineLoad",
    "EngineOverloadedError",
    "EngineUnhealthyError",
    "GenerationRequest",
    "SpecialistEngine",
    "build_engine",
    "build_solver",
    "register_engine",
    "register_solver",
]
