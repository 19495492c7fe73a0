"""Attention backends behind one call: `attend(q, k, v, mask, causal)` on (B, H, T, hd) tensors.

`sdpa` (torch, always available) is the default. `xformers` is the optional CUDA backend; windows
already form the batch dimension, so a batch of windows is xformers' block-diagonal packing.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from lclab.registry import Registry

Backend = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, bool], torch.Tensor]
BACKENDS: Registry[Backend] = Registry("attention backend", "model.attention", "lclab.attention")


@BACKENDS.register("sdpa")
def sdpa(q, k, v, mask=None, causal=False):
    """torch's scaled_dot_product_attention (every device)."""
    # mask: bool, True = may attend, broadcastable to (B, H, Tq, Tk)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal and mask is None)


@BACKENDS.register("xformers")
def xformers_attention(q, k, v, mask=None, causal=False):
    """xformers' memory-efficient attention (CUDA; windows in the batch are its block-diagonal packing)."""
    import xformers.ops as xops

    q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, T, H, hd), xformers' layout
    if mask is not None:
        B, Tq, H, _ = q.shape
        Tk = k.shape[1]
        # xformers wants a float bias whose last dim is padded to a multiple of 8
        pad = (-Tk) % 8
        bias = torch.zeros(B, H, Tq, Tk + pad, dtype=q.dtype, device=q.device)
        bias[..., :Tk].masked_fill_(~mask.expand(B, H, Tq, Tk), float("-inf"))
        bias = bias[..., :Tk]
    else:
        bias = xops.LowerTriangularMask() if causal else None
    return xops.memory_efficient_attention(q, k, v, attn_bias=bias).transpose(1, 2)


def resolve(name: str, device: torch.device | str) -> str:
    """Pick a concrete backend; `auto` uses xformers only where a real call succeeds (CUDA)."""
    if name != "auto":
        return name
    if torch.device(device).type != "cuda":
        return "sdpa"
    try:
        q = torch.randn(1, 2, 8, 16, device=device, dtype=torch.bfloat16)
        xformers_attention(q, q, q, None, True)
        return "xformers"
    except (ImportError, NotImplementedError, RuntimeError, ValueError):  # not installed, or no kernel for this GPU
        return "sdpa"
