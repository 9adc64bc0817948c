"""kernels/: each op's Triton implementation (run by Triton's interpreter on the CPU)
against its torch reference, over odd sizes, dtypes and strided inputs; the balanced
assignment against the optimum; the backend choice; and `transformers` beside the package."""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # before the kernels are first compiled

import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from kernels import BalancedAssignment, Gating, MaskedMeanPool, default_backend

DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def tolerance(dtype: torch.dtype) -> dict[str, float]:
    return {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 2e-3, "rtol": 2e-3}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 7, 33), (5, 13, 640), (2, 64, 17)])
@pytest.mark.parametrize("normalize", [False, True])
def test_pool_triton_matches_reference(dtype, shape, normalize):
    gen = torch.Generator().manual_seed(sum(shape))
    hidden = torch.randn(shape, generator=gen).to(dtype)
    mask = (torch.rand(shape[:2], generator=gen) > 0.3).long()
    mask[0, 0] = 1
    want = MaskedMeanPool("native")(hidden, mask, normalize)
    got = MaskedMeanPool("triton")(hidden, mask, normalize)
    assert got.dtype == torch.float32 and got.shape == (shape[0], shape[2])
    torch.testing.assert_close(got, want, **tolerance(dtype))


def test_pool_strided_inputs_and_mask_kinds():
    base = torch.randn(6, 9, 40)
    hidden = base.transpose(0, 1)[:, ::2, ::3]  # [9, 3, 14], no unit stride anywhere
    assert not hidden.is_contiguous()
    mask = torch.ones(3, 9, dtype=torch.bool).t()  # [9, 3], strided
    mask[::2, 1] = False
    for kind in (torch.bool, torch.int32, torch.float32):
        m = mask.to(kind)
        for normalize in (False, True):
            want = MaskedMeanPool("native")(hidden, m, normalize)
            got = MaskedMeanPool("triton")(hidden, m, normalize)
            torch.testing.assert_close(got, want)


def test_pool_is_the_masked_mean_and_an_empty_row_is_zero():
    hidden = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    mask = torch.tensor([[0, 1, 1], [0, 0, 0]])
    for backend in ("native", "triton"):
        pooled = MaskedMeanPool(backend)(hidden, mask)
        torch.testing.assert_close(pooled[0], hidden[0, 1:].mean(0))
        assert pooled[1].abs().sum() == 0
        unit = MaskedMeanPool(backend)(hidden, mask, normalize=True)
        torch.testing.assert_close(unit[0].norm(), torch.tensor(1.0))
        assert unit[1].abs().sum() == 0


def test_pool_refuses_mismatched_shapes():
    for backend in ("native", "triton"):
        with pytest.raises(ValueError, match=r"hidden \[B, T, H\] and mask \[B, T\]"):
            MaskedMeanPool(backend)(torch.zeros(2, 3, 4), torch.ones(2, 4))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("batch", "experts"), [(1, 1), (7, 3), (33, 5), (4, 17)])
@pytest.mark.parametrize("temperature", [0.0, 0.05, 1.0])
def test_gate_triton_matches_reference(dtype, batch, experts, temperature):
    gen = torch.Generator().manual_seed(batch * 100 + experts)
    scores = torch.rand(batch, experts, generator=gen).to(dtype)
    costs = torch.rand(experts, generator=gen)
    for k in sorted({1, experts, (experts + 1) // 2}):
        kw = {"temperature": temperature, "tradeoff": 0.3, "k": k}
        want = Gating("native")(scores, costs, **kw)
        got = Gating("triton")(scores, costs, **kw)
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b, **tolerance(torch.float32))


def test_gate_strided_scores_ties_and_costs():
    scores = torch.tensor([[0.5, 0.2, 0.5, 0.1], [0.1, 0.9, 0.3, 0.9]]).t().contiguous().t()
    scores = torch.cat([scores, scores]).t()[:, ::2]  # [4, 2] view, transposed
    assert not scores.is_contiguous()
    costs = torch.tensor([0.0, 1.0])
    for backend in ("native", "triton"):
        gate = Gating(backend)(scores, costs, tradeoff=0.0, k=2)
        torch.testing.assert_close(gate.utility, scores.float())
        assert gate.top_index[:, 0].tolist() == scores.argmax(1).tolist()
        tie = Gating(backend)(torch.tensor([[0.4, 0.4, 0.2]]), torch.zeros(3), k=3)
        assert tie.top_index.tolist() == [[0, 1, 2]]  # ties: the lower index first
        costly = Gating(backend)(torch.tensor([[0.6, 0.5]]), torch.tensor([1.0, 0.0]), tradeoff=0.2)
        assert costly.top_index.tolist() == [[1]]  # 0.6 - 0.2 < 0.5
        soft = Gating(backend)(torch.tensor([[1.0, 2.0, 3.0]]), torch.zeros(3), temperature=1.0)
        torch.testing.assert_close(soft.probs.sum(), torch.tensor(1.0))


def test_gate_refuses_bad_arguments():
    for backend in ("native", "triton"):
        gate = Gating(backend)
        with pytest.raises(ValueError, match=r"k=4 must lie in 1\.\.3"):
            gate(torch.zeros(2, 3), torch.zeros(3), k=4)
        with pytest.raises(ValueError, match="costs \\[E\\]"):
            gate(torch.zeros(2, 3), torch.zeros(2))
        with pytest.raises(ValueError, match="temperature -1"):
            gate(torch.zeros(2, 3), torch.zeros(3), temperature=-1)


def optimum(scores: np.ndarray, capacity: np.ndarray) -> float:
    """The best total score with at most capacity[e] queries on expert e (every query
    assigned while room lasts): the Hungarian method over one column per slot."""
    slots = np.repeat(np.arange(len(capacity)), capacity)
    rows, cols = linear_sum_assignment(scores[:, slots], maximize=True)
    return float(scores[rows, slots[cols]].sum())


def test_assignment_respects_capacity_and_comes_near_the_optimum():
    rng = np.random.default_rng(0)
    ratios = []
    for trial in range(40):
        batch, experts = int(rng.integers(2, 40)), int(rng.integers(2, 6))
        scores = rng.random((batch, experts))
        scores[:, 0] += 0.3  # a hot expert everyone prefers
        capacity = rng.integers(0, batch // 2 + 2, size=experts)
        if capacity.sum() == 0:
            capacity[trial % experts] = 1
        result = BalancedAssignment("native")(torch.tensor(scores), torch.tensor(capacity))
        choice = result.choice.numpy()
        counts = np.bincount(choice[choice >= 0], minlength=experts)
        assert (counts <= capacity).all(), (counts, capacity)
        assert (choice >= 0).sum() == min(batch, capacity.sum())  # nobody waits while room lasts
        got = float(scores[np.flatnonzero(choice >= 0), choice[choice >= 0]].sum())
        ratios.append(got / optimum(scores, capacity))
    assert min(ratios) >= 0.95 and np.mean(ratios) >= 0.99, ratios


def test_assignment_with_room_for_all_gives_each_its_best():
    scores = torch.rand(16, 4, generator=torch.Generator().manual_seed(3))
    result = BalancedAssignment("native")(scores, torch.full((4,), 16))
    assert result.choice.tolist() == scores.argmax(1).tolist()


def test_assignment_moves_the_queries_that_lose_least():
    # both prefer expert 0 with one slot: the one that loses more by moving keeps it
    scores = torch.tensor([[0.9, 0.85], [0.9, 0.1]])
    for backend in ("native", "triton"):
        assert BalancedAssignment(backend)(scores, torch.tensor([1, 1])).choice.tolist() == [1, 0]


@pytest.mark.parametrize(("batch", "experts"), [(1, 1), (5, 3), (31, 4), (64, 9)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_assignment_triton_matches_reference(batch, experts, dtype):
    gen = torch.Generator().manual_seed(batch + experts)
    scores = torch.rand(batch, experts, generator=gen).to(dtype)
    for capacity in (torch.full((experts,), batch), torch.randint(0, 4, (experts,), generator=gen)):
        want = BalancedAssignment("native")(scores, capacity)
        got = BalancedAssignment("triton")(scores, capacity)
        torch.testing.assert_close(got.plan, want.plan, atol=1e-5, rtol=1e-4)
        assert got.choice.tolist() == want.choice.tolist()


def test_assignment_strided_scores():
    scores = torch.rand(8, 12, generator=torch.Generator().manual_seed(5)).t()[::2]  # [6, 8]
    assert not scores.is_contiguous()
    capacity = torch.tensor([1, 2, 0, 1, 3, 1, 0, 1])
    want = BalancedAssignment("native")(scores.contiguous(), capacity)
    got = BalancedAssignment("triton")(scores, capacity)
    assert got.choice.tolist() == want.choice.tolist()


def test_assignment_refuses_bad_input():
    op = BalancedAssignment("native")
    with pytest.raises(ValueError, match="capacities must be >= 0"):
        op(torch.rand(2, 2), torch.tensor([1, -1]))
    with pytest.raises(ValueError, match=r"scores \[B, E\] and capacity \[E\]"):
        op(torch.rand(2, 2), torch.tensor([1, 1, 1]))
    with pytest.raises(ValueError, match="scores must be finite"):
        op(torch.tensor([[float("nan"), 0.0]]), torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="temperature 0 must be > 0"):
        BalancedAssignment("native", temperature=0)


def test_backend_is_chosen_once_from_the_device_or_the_environment(monkeypatch):
    monkeypatch.delenv("MIXSERVE_KERNELS", raising=False)
    expected = "triton" if torch.cuda.is_available() else "native"
    assert default_backend() == expected and Gating().backend == expected
    assert Gating(device="cpu").backend == "native"  # CPU tensors: torch, GPU or not
    assert default_backend("cuda:1") == "triton"
    monkeypatch.setenv("MIXSERVE_KERNELS", "triton")
    assert Gating().backend == "triton"
    monkeypatch.setenv("MIXSERVE_KERNELS", "cuda")
    with pytest.raises(
        ValueError, match="MIXSERVE_KERNELS='cuda': expected auto, native or triton"
    ):
        Gating()
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        Gating("gpu")


def test_transformers_still_imports_beside_our_kernels_package():
    # transformers probes for Hugging Face's `kernels` distribution; ours must not pass for it
    code = (
        "import kernels, transformers\n"
        "from transformers.utils.import_utils import is_kernels_available\n"
        "from transformers import AutoModelForCausalLM, Gemma3ForCausalLM\n"
        "assert kernels.MaskedMeanPool, 'ours'\n"
        "print(is_kernels_available())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "False"
