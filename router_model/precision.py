"""The router LLM's precision, chosen from the CPU it runs on.

bfloat16 pays only where the CPU computes in it natively (AVX512-BF16, AMX-BF16): there
the router's forward pass ran about 2-3x faster than in float32; on CPUs with AVX2 only,
torch emulates it and it ran 3-5x slower (benchmarks/router_latency.py, README). ``auto``
reads the flags of the machine the router replica runs on (a cluster's nodes differ), not
the one that wrote the config. A GPU runs bfloat16.
"""

from __future__ import annotations

from pathlib import Path

DTYPES = ("auto", "bfloat16", "float32")
NATIVE_BF16 = {"avx512_bf16", "amx_bf16"}


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags (``/proc/cpuinfo``'s ``flags``; empty where it is not)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def resolve_dtype(dtype: str, flags: set[str] | None = None) -> str:
    """``dtype`` itself, or for ``auto`` bfloat16 where the CPU has native bfloat16
    arithmetic and float32 elsewhere."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    if dtype != "auto":
        return dtype
    found = cpu_flags() if flags is None else flags
    return "bfloat16" if found & NATIVE_BF16 else "float32"
