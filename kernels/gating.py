"""Gating, fused: scores [B, E] → probabilities (a softmax over ``scores / temperature``;
with ``temperature`` 0 the scores are taken as they are), utilities (probability minus
``tradeoff`` × each expert's relative cost [E]; ``tradeoff`` one number, or one per row
[B]) and the ``k`` best experts by utility, best first (ties: the lower index).

The router's choice is the top-1 of this (its heads' scores, its specialists' relative
costs, λ); an ensemble takes the top-k. The reference is the unfused torch code; the
Triton kernel does one row per program in float32.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Union

from kernels.custom_op import CustomOp

if TYPE_CHECKING:
    import torch

    Tradeoff = Union[float, "torch.Tensor"]  # noqa: UP007 - a string member needs Union


class Gate(NamedTuple):
    probs: torch.Tensor  # [B, E] float32
    utility: torch.Tensor  # [B, E] float32
    top_utility: torch.Tensor  # [B, k] float32, best first
    top_index: torch.Tensor  # [B, k] int64


class Gating(CustomOp):
    name = "gating"

    def forward_native(
        self,
        scores: torch.Tensor,
        costs: torch.Tensor,
        *,
        temperature: float = 0.0,
        tradeoff: Tradeoff = 0.0,
        k: int = 1,
    ) -> Gate:
        import torch

        lam = _check(scores, costs, temperature, k, tradeoff)
        x = scores.float()
        probs = torch.softmax(x / temperature, dim=-1) if temperature > 0 else x.clone()
        utility = probs - lam[:, None] * costs.to(x.device, torch.float32)[None, :]
        # stable: among equal utilities the lower index comes first
        order = torch.sort(utility, dim=-1, descending=True, stable=True)
        return Gate(probs, utility, order.values[:, :k], order.indices[:, :k])

    def forward_triton(
        self,
        scores: torch.Tensor,
        costs: torch.Tensor,
        *,
        temperature: float = 0.0,
        tradeoff: Tradeoff = 0.0,
        k: int = 1,
    ) -> Gate:
        import torch
        import triton

        from kernels.triton_kernels import gate_kernel

        lam = _check(scores, costs, temperature, k, tradeoff)
        batch, experts = scores.shape
        device = scores.device
        costs = costs.to(device, torch.float32)
        probs = torch.empty((batch, experts), dtype=torch.float32, device=device)
        utility = torch.empty_like(probs)
        top_utility = torch.empty((batch, k), dtype=torch.float32, device=device)
        top_index = torch.empty((batch, k), dtype=torch.int64, device=device)
        if batch == 0:
            return Gate(probs, utility, top_utility, top_index)
        gate_kernel[(batch,)](
            scores, costs, lam, probs, utility, top_utility, top_index,
            experts, scores.stride(0), scores.stride(1), costs.stride(0), lam.stride(0),
            float(temperature),
            K=k, BLOCK_E=triton.next_power_of_2(max(experts, 2)),
        )  # fmt: skip
        return Gate(probs, utility, top_utility, top_index)


def _check(
    scores: torch.Tensor, costs: torch.Tensor, temperature: float, k: int, tradeoff: Tradeoff
) -> torch.Tensor:
    """Validate; the tradeoff as one float32 per row."""
    import torch

    if scores.dim() != 2 or costs.dim() != 1 or costs.shape[0] != scores.shape[1]:
        raise ValueError(
            f"gating: scores [B, E] and costs [E], got {tuple(scores.shape)} "
            f"and {tuple(costs.shape)}"
        )
    if not 1 <= k <= scores.shape[1]:
        raise ValueError(f"gating: k={k} must lie in 1..{scores.shape[1]} (the experts)")
    if temperature < 0:
        raise ValueError(f"gating: temperature {temperature} must be >= 0")
    lam = torch.as_tensor(tradeoff, dtype=torch.float32, device=scores.device)
    if lam.dim() == 0:
        return lam.expand(scores.shape[0])
    if lam.dim() != 1 or lam.shape[0] != scores.shape[0]:
        raise ValueError(f"gating: tradeoff one number or one per row, got {tuple(lam.shape)}")
    return lam
