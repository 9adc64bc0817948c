"""Masked mean-pool, optionally L2-normalised, fused: hidden states [B, T, H] and a mask
[B, T] (1 for a token to pool, 0 for padding or a token left out) → one row [B, H] each.

The router pools a layer's residual stream (no normalising: its heads centre first); a
sentence embedder pools and normalises. The reference is the unfused torch code both used;
the Triton kernel reads each row's states once, in float32 whatever their dtype, and
writes float32. A row with no token pooled is all zeros.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kernels.custom_op import CustomOp

if TYPE_CHECKING:
    import torch

EPS = 1e-12  # as torch.nn.functional.normalize


class MaskedMeanPool(CustomOp):
    name = "masked_mean_pool"

    def forward_native(
        self, hidden: torch.Tensor, mask: torch.Tensor, normalize: bool = False
    ) -> torch.Tensor:
        import torch

        _check(hidden, mask)
        weights = mask.to(hidden.device, torch.float32).unsqueeze(-1)
        count = weights.sum(1).clamp(min=1.0)
        pooled = (hidden.float() * weights).sum(1) / count
        if normalize:
            pooled = pooled / pooled.norm(dim=-1, keepdim=True).clamp(min=EPS)
        return pooled

    def forward_triton(
        self, hidden: torch.Tensor, mask: torch.Tensor, normalize: bool = False
    ) -> torch.Tensor:
        import torch
        import triton

        from kernels.triton_kernels import pool_kernel

        _check(hidden, mask)
        batch, tokens, width = hidden.shape
        out = torch.empty((batch, width), dtype=torch.float32, device=hidden.device)
        if batch == 0:
            return out
        mask = mask.to(hidden.device)
        if mask.dtype == torch.bool:
            mask = mask.to(torch.int8)
        block = triton.next_power_of_2(max(width, 16))
        pool_kernel[(batch,)](
            hidden, mask, out, tokens, width,
            hidden.stride(0), hidden.stride(1), hidden.stride(2),
            mask.stride(0), mask.stride(1), out.stride(0),
            NORMALIZE=normalize, BLOCK_H=block, EPS=EPS,
        )  # fmt: skip
        return out


def _check(hidden: torch.Tensor, mask: torch.Tensor) -> None:
    if hidden.dim() != 3 or mask.dim() != 2 or tuple(mask.shape) != tuple(hidden.shape[:2]):
        raise ValueError(
            f"masked_mean_pool: hidden [B, T, H] and mask [B, T], got {tuple(hidden.shape)} "
            f"and {tuple(mask.shape)}"
        )
