"""The op pattern of vLLM's ``CustomOp``: each op has a torch reference
(``forward_native``) and a Triton implementation (``forward_triton``), one of which is
chosen once, when the op is made, from the device its tensors will live on.

``MIXSERVE_KERNELS`` overrides the choice: ``native``, ``triton`` or ``auto`` (the
default: Triton for a CUDA device when the ``triton`` package is present, else torch; with
no device named, the CUDA device if there is one).
With ``TRITON_INTERPRET=1`` Triton runs on the CPU, which is how the tests check the
Triton path against the reference on a machine without a GPU.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any, ClassVar

BACKENDS = ("native", "triton")


def triton_available() -> bool:
    return importlib.util.find_spec("triton") is not None


def interpreting() -> bool:
    """Triton's interpreter is on: its kernels run on CPU tensors."""
    return os.environ.get("TRITON_INTERPRET", "") == "1"


def default_backend(device: str | None = None) -> str:
    """``MIXSERVE_KERNELS`` if set, else Triton for a CUDA device, else torch."""
    wanted = os.environ.get("MIXSERVE_KERNELS", "auto").strip().lower()
    if wanted not in ("auto", *BACKENDS):
        raise ValueError(f"MIXSERVE_KERNELS={wanted!r}: expected auto, native or triton")
    if wanted != "auto":
        return wanted
    if device is None:
        import torch

        on_gpu = torch.cuda.is_available()
    else:
        on_gpu = str(device).split(":")[0] == "cuda"
    return "triton" if on_gpu and triton_available() else "native"


class CustomOp:
    """Subclasses define ``forward_native`` and ``forward_triton`` with one signature."""

    name: ClassVar[str] = ""

    def __init__(self, backend: str | None = None, *, device: str | None = None) -> None:
        backend = backend or default_backend(device)
        if backend not in BACKENDS:
            raise ValueError(f"{self.name}: unknown backend {backend!r} (native or triton)")
        if backend == "triton" and not triton_available():
            raise RuntimeError(f"{self.name}: the triton backend needs the triton package")
        self.backend = backend
        self._forward = self.forward_triton if backend == "triton" else self.forward_native

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._forward(*args, **kwargs)

    def forward_native(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def forward_triton(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(backend={self.backend!r})"
