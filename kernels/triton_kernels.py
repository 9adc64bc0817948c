"""The Triton kernels of ``kernels``' ops, imported only by their ``forward_triton``."""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def pool_kernel(
    hidden, mask, out, tokens, width,
    s_hb, s_ht, s_hh, s_mb, s_mt, s_ob,
    NORMALIZE: tl.constexpr, BLOCK_H: tl.constexpr, EPS: tl.constexpr,
):  # fmt: skip
    """One program per row: the masked mean over its tokens, then (``NORMALIZE``) / its norm."""
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_H)
    inside = cols < width
    total = tl.zeros((BLOCK_H,), dtype=tl.float32)
    count = 0.0
    for t in range(0, tokens):
        w = tl.load(mask + row * s_mb + t * s_mt).to(tl.float32)
        x = tl.load(hidden + row * s_hb + t * s_ht + cols * s_hh, mask=inside, other=0.0)
        total += x.to(tl.float32) * w
        count += w
    pooled = total / tl.maximum(count, 1.0)
    if NORMALIZE:
        norm = tl.sqrt(tl.sum(pooled * pooled, axis=0))
        pooled = pooled / tl.maximum(norm, EPS)
    tl.store(out + row * s_ob + cols, pooled, mask=inside)


@triton.jit
def gate_kernel(
    scores, costs, tradeoff, probs, utility, top_utility, top_index,
    experts, s_b, s_e, s_c, s_t, temperature,
    K: tl.constexpr, BLOCK_E: tl.constexpr,
):  # fmt: skip
    """One program per row: softmax (or the scores), utility, then k rounds of argmax."""
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_E)
    inside = cols < experts
    x = tl.load(scores + row * s_b + cols * s_e, mask=inside, other=0.0).to(tl.float32)
    if temperature > 0:
        z = tl.where(inside, x / temperature, float("-inf"))
        z = z - tl.max(z, axis=0)
        e = tl.where(inside, tl.exp(z), 0.0)
        p = e / tl.sum(e, axis=0)
    else:
        p = x
    cost = tl.load(costs + cols * s_c, mask=inside, other=0.0)
    u = p - tl.load(tradeoff + row * s_t) * cost
    tl.store(probs + row * experts + cols, p, mask=inside)
    tl.store(utility + row * experts + cols, u, mask=inside)
    left = tl.where(inside, u, float("-inf"))
    for j in tl.static_range(K):
        best = tl.max(left, axis=0)
        # the lowest index holding the best value
        at = tl.min(tl.where(left == best, cols, BLOCK_E), axis=0)
        tl.store(top_utility + row * K + j, best)
        tl.store(top_index + row * K + j, at.to(tl.int64))
        left = tl.where(cols == at, float("-inf"), left)


@triton.jit
def sinkhorn_kernel(
    logk, logc, plan, rows, cols, s_b, s_e, iterations,
    BLOCK_B: tl.constexpr, BLOCK_E: tl.constexpr, NEG: tl.constexpr,
):  # fmt: skip
    """One program for the whole batch: log-domain Sinkhorn with rows of mass 1 and
    columns of at most their capacity, then the plan."""
    r = tl.arange(0, BLOCK_B)
    c = tl.arange(0, BLOCK_E)
    row_in = r < rows
    col_in = c < cols
    both = row_in[:, None] & col_in[None, :]
    x = tl.load(logk + r[:, None] * s_b + c[None, :] * s_e, mask=both, other=NEG)
    lc = tl.load(logc + c, mask=col_in, other=NEG)
    f = tl.zeros((BLOCK_B,), dtype=tl.float32)
    g = tl.where(col_in, 0.0, NEG)
    for _ in range(iterations):
        a = x + g[None, :]
        m = tl.max(a, axis=1)
        f = -(m + tl.log(tl.sum(tl.exp(a - m[:, None]), axis=1)))
        f = tl.where(row_in, f, NEG)
        b = x + f[:, None]
        n = tl.max(b, axis=0)
        g = tl.minimum(lc - (n + tl.log(tl.sum(tl.exp(b - n[None, :]), axis=0))), 0.0)
        g = tl.where(col_in, g, NEG)
    p = tl.exp(x + f[:, None] + g[None, :])
    tl.store(plan + r[:, None] * cols + c[None, :], p, mask=both)
