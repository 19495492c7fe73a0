"""Transformer parts shared by encoder, adapter and decoder: RoPE, attention, SwiGLU, pre-norm block."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from .attention import backend as attention_backend
from .config import swiglu_hidden


def compute_dtype(device: torch.device) -> torch.dtype:
    """The dtype activations and the residual stream run in: autocast's (bf16 on GPU) where it is on, else fp32.
    Weights and optimizer state stay fp32 either way."""
    return torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(device.type) else torch.float32


def rope_tables(positions: torch.Tensor, head_dim: int, dtype: torch.dtype = torch.float32,
                base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of shape (L, head_dim // 2) for rotary embeddings at `positions` (L,), in `dtype`. Angles are taken
    in fp32; callers cache the tables per shape, so no step recomputes them."""
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim)
    angles = torch.outer(positions.float(), inv_freq)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: (B, H, T, hd); half-split layout: dims i and i + hd/2 form a rotated pair (contiguous reads, x's dtype)
    x1, x2 = x.chunk(2, dim=-1)  # (B, H, T, hd/2) each
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def flat_cat(xs: list[torch.Tensor]) -> torch.Tensor:
    """[(B_i, T_i, ...)] -> (sum B_i T_i, ...); a single batch is only flattened (a view where its layout allows)."""
    return torch.cat([x.flatten(0, 1) for x in xs]) if len(xs) > 1 else xs[0].flatten(0, 1)


def split_flat(x: torch.Tensor, shapes) -> list[torch.Tensor]:
    """(sum B_i T_i, ...) -> [(B_i, T_i, ...)] for shapes [(B_i, T_i)]: `flat_cat` undone, as views."""
    return [part.view(b, t, *x.shape[1:]) for part, (b, t) in zip(x.split([b * t for b, t in shapes]), shapes)]


class SelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, backend: str = "sdpa"):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.proj = nn.Linear(d_model, d_model, bias=False)
        self.backend = attention_backend(backend)

    def forward(self, x, rope=None, mask=None, causal=False, segments=None):
        # x: (B, T, D); mask: None, or the backend's prepared KeyMask. Packed (`segments`): x is (sum B_i T_i, D), the
        # rows of several batches of sequences one after another, and rope holds one table pair per segment (B_i, T_i):
        # the projections run once over every token, attention per segment
        qkv = self.qkv(x)
        if segments is None:
            return self.proj(self._attend(qkv, rope, mask, causal))
        ys = [self._attend(p, r, None, causal) for p, r in zip(split_flat(qkv, segments), rope)]
        return self.proj(flat_cat(ys))

    def _attend(self, qkv, rope, mask, causal):
        # qkv: (B, T, 3D) -> (B, T, D)
        q, k, v = rearrange(qkv, "b t (three h hd) -> three b h t hd", three=3, h=self.n_heads)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        y = self.backend.attend(q, k, v, mask, causal)  # (B, H, T, hd)
        return rearrange(y, "b h t hd -> b t (h hd)")


class SwiGLU(nn.Module):
    def __init__(self, d_model: int, mlp_ratio: float):
        super().__init__()
        hidden = swiglu_hidden(d_model, mlp_ratio)
        self.gate_up = nn.Linear(d_model, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x):
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, d_model: int, n_heads: int, mlp_ratio: float, backend: str = "sdpa"):
        super().__init__()
        self.attn_norm = nn.RMSNorm(d_model)
        self.attn = SelfAttention(d_model, n_heads, backend)
        self.mlp_norm = nn.RMSNorm(d_model)
        self.mlp = SwiGLU(d_model, mlp_ratio)

    def forward(self, x, rope=None, mask=None, causal=False, segments=None):
        x = x + self.attn(self.attn_norm(x), rope, mask, causal, segments)
        return x + self.mlp(self.mlp_norm(x))
