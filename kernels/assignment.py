"""Balanced assignment, as MoE layers assign tokens under a capacity factor: scores [B, E]
(a batch of queries' utility for each expert) and capacities [E] (free slots) → one
expert per query such that no expert gets more than its capacity and the total utility
is high.

1. A transport plan by Sinkhorn iterations in the log domain: rows (queries) carry mass
   1, columns (experts) at most their capacity; when the capacities add up to less than
   the batch, a slack column (lower utility than any real one) takes the rest. The plan
   is ``exp((scores / temperature) + f + g)`` for the row and column potentials f, g.
   This is the op's compute, in torch (``forward_native``) or in one Triton program.
2. A greedy repair, shared by both: (query, expert) pairs in order of their share of the
   plan (then score): each query takes the first of its pairs whose expert still has
   room, so no capacity is exceeded and nobody is left out while room lasts; a query with
   no free expert left gets -1 (it waits or is refused by the caller).

With ample capacity every query gets its best expert; as capacity tightens, the queries
that lose least by moving are the ones moved. On random batches with a hot expert
(``tests/unit/test_kernels.py``) the total utility is within 4% of the optimum (the
Hungarian method) at worst and 0.5% on average; serving each query in turn its best free
expert loses up to half.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from kernels.custom_op import CustomOp

if TYPE_CHECKING:
    import torch

NEG = -1.0e30  # log of zero, finite so that masked sums stay well defined
TRITON_MAX = (4096, 128)  # rows, columns (with slack) the one-program kernel holds


class Assignment(NamedTuple):
    choice: torch.Tensor  # [B] int64: an expert, or -1 when none had room
    plan: torch.Tensor  # [B, E] float32: the Sinkhorn plan over the real experts


class BalancedAssignment(CustomOp):
    name = "balanced_assignment"

    def __init__(
        self,
        backend: str | None = None,
        *,
        device: str | None = None,
        temperature: float = 0.1,
        iterations: int = 100,
    ) -> None:
        if temperature <= 0:
            raise ValueError(f"balanced_assignment: temperature {temperature} must be > 0")
        if iterations < 1:
            raise ValueError(f"balanced_assignment: iterations {iterations} must be >= 1")
        super().__init__(backend, device=device)
        self.temperature = temperature
        self.iterations = iterations

    def forward_native(self, scores: torch.Tensor, capacity: torch.Tensor) -> Assignment:
        logk, logc = self._prepare(scores, capacity)
        return self._repair(scores, capacity, sinkhorn_plan(logk, logc, self.iterations))

    def forward_triton(self, scores: torch.Tensor, capacity: torch.Tensor) -> Assignment:
        import torch
        import triton

        from kernels.triton_kernels import sinkhorn_kernel

        logk, logc = self._prepare(scores, capacity)
        rows, cols = logk.shape
        if rows > TRITON_MAX[0] or cols > TRITON_MAX[1] or rows == 0:
            return self.forward_native(scores, capacity)
        plan = torch.empty((rows, cols), dtype=torch.float32, device=logk.device)
        sinkhorn_kernel[(1,)](
            logk, logc, plan, rows, cols, logk.stride(0), logk.stride(1), self.iterations,
            BLOCK_B=triton.next_power_of_2(max(rows, 2)),
            BLOCK_E=triton.next_power_of_2(max(cols, 2)), NEG=NEG,
        )  # fmt: skip
        return self._repair(scores, capacity, plan)

    def _prepare(
        self, scores: torch.Tensor, capacity: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``scores / temperature`` with a slack column when capacity is short, and the
        log of each column's capacity."""
        import torch

        if scores.dim() != 2 or capacity.dim() != 1 or capacity.shape[0] != scores.shape[1]:
            raise ValueError(
                f"balanced_assignment: scores [B, E] and capacity [E], got "
                f"{tuple(scores.shape)} and {tuple(capacity.shape)}"
            )
        if scores.shape[1] == 0:
            raise ValueError("balanced_assignment: no experts")
        if bool((capacity < 0).any()):
            raise ValueError("balanced_assignment: capacities must be >= 0")
        if not bool(torch.isfinite(scores).all()):
            raise ValueError("balanced_assignment: scores must be finite")
        x = scores.float() / self.temperature
        cap = capacity.to(x.device, torch.float32)
        short = float(scores.shape[0]) - float(cap.sum())
        if short > 0:  # the slack column: below every real score
            low = (x.min() - 1.0 / self.temperature) if x.numel() else x.new_tensor(0.0)
            x = torch.cat([x, low.expand(x.shape[0], 1)], dim=1)
            cap = torch.cat([cap, cap.new_tensor([short])])
        logc = torch.where(cap > 0, torch.log(cap.clamp(min=1e-30)), torch.full_like(cap, NEG))
        return x.contiguous(), logc.contiguous()

    @staticmethod
    def _repair(scores: torch.Tensor, capacity: torch.Tensor, plan: torch.Tensor) -> Assignment:
        import numpy as np
        import torch

        batch, experts = scores.shape
        real = plan[:, :experts].float()
        favour = real.detach().to("cpu", torch.float64).numpy().ravel()
        tiebreak = scores.detach().to("cpu", torch.float64).numpy().ravel()
        free = capacity.to("cpu", torch.int64).numpy().copy()
        choice = np.full(batch, -1, dtype=np.int64)
        left = min(batch, int(free.sum()))
        # (query, expert) pairs by plan, then score, then position: each query takes the
        # first pair of its whose expert still has room
        for pair in np.lexsort((np.arange(favour.size), -tiebreak, -favour)):
            if left == 0:
                break
            row, col = divmod(int(pair), experts)
            if choice[row] < 0 and free[col] > 0:
                choice[row] = col
                free[col] -= 1
                left -= 1
        return Assignment(torch.from_numpy(choice).to(scores.device), real)


def sinkhorn_plan(logk: torch.Tensor, logc: torch.Tensor, iterations: int) -> torch.Tensor:
    """The torch reference: rows of mass 1, columns of at most ``exp(logc)``."""
    import torch

    f = torch.zeros(logk.shape[0], dtype=torch.float32, device=logk.device)
    g = torch.zeros(logk.shape[1], dtype=torch.float32, device=logk.device)
    for _ in range(iterations):
        f = -torch.logsumexp(logk + g[None, :], dim=1)
        g = torch.clamp(logc - torch.logsumexp(logk + f[:, None], dim=0), max=0.0)
    return torch.exp(logk + f[:, None] + g[None, :])
