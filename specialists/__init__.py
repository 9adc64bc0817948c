"""Specialist engines: the engine contract, its vLLM and fake implementations, prompts.

Public API: ``SpecialistEngine``, ``GenerationRequest``, ``Chunk``, ``build_engine``,
``register_engine``, ``prepare_model``, and the engine errors.
"""

from specialists.engine import Chunk, GenerationRequest, SpecialistEngine
from specialists.errors import ContextLengthError, EngineOverloadedError, EngineUnhealthyError
from specialists.registry import build_engine, register_engine
from specialists.weights import ModelPrepareError, prepare_model

__all__ = [
    "Chunk",
    "ContextLengthError",
    "EngineOverloadedError",
    "EngineUnhealthyError",
    "GenerationRequest",
    "ModelPrepareError",
    "SpecialistEngine",
    "build_engine",
    "prepare_model",
    "register_engine",
]
