"""A replica's torch work runs on one thread of its own: construction and every call."""

import asyncio
import threading

import pytest

from orchestrator.deployments import ComputeThread


def test_construction_and_every_call_run_on_one_thread():
    compute = ComputeThread("t")
    seen = {compute.run_now(threading.get_ident)}

    async def many() -> set[int]:
        idents = await asyncio.gather(*[compute.run(threading.get_ident) for _ in range(20)])
        return set(idents)

    seen |= asyncio.run(many())
    assert len(seen) == 1 and threading.get_ident() not in seen


def test_calls_pass_arguments_and_errors_through():
    compute = ComputeThread("t")
    assert compute.run_now(pow, 2, 5) == 32
    assert compute.run_now(int, "ff", base=16) == 255
    assert asyncio.run(compute.run(divmod, 7, 2)) == (3, 1)
    with pytest.raises(ValueError, match="invalid literal"):
        asyncio.run(compute.run(int, "x"))
