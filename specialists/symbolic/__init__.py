"""The symbolic math engine: SymPy in front of a model engine (see ``engine``).

Public API: ``SymbolicEngine``, ``Limits``, ``Outcome``, ``work`` (a question to its
outcome, in-process, for tests and benchmarks) and ``evaluate``.
"""

from specialists.symbolic.engine import SymbolicEngine
from specialists.symbolic.limits import Limits, Refused
from specialists.symbolic.solve import Outcome, evaluate, work

__all__ = ["Limits", "Outcome", "Refused", "SymbolicEngine", "evaluate", "work"]
