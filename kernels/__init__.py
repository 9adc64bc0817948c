"""Compute ops, each with a torch reference (``forward_native``) and a Triton
implementation (``forward_triton``) chosen once from the device (``CustomOp``).

Public API: ``MaskedMeanPool``, ``Gating``, ``Gate``, ``BalancedAssignment``,
``Assignment``, ``CustomOp``, ``default_backend``.

Below the orchestrator, ``router_model`` and ``retrieval``: imports none of them. Not the
Hugging Face distribution named ``kernels`` that ``transformers`` probes for; a test
checks ``transformers`` still imports cleanly beside this package.
"""

from __future__ import annotations

from kernels.assignment import Assignment, BalancedAssignment
from kernels.custom_op import CustomOp, default_backend
from kernels.gating import Gate, Gating
from kernels.pooling import MaskedMeanPool

__all__ = [
    "Assignment",
    "BalancedAssignment",
    "CustomOp",
    "Gate",
    "Gating",
    "MaskedMeanPool",
    "default_backend",
]
