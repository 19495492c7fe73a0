"""Window encoder: a transformer over fixed-size, possibly overlapping windows of the context.

Windows step S = W - O tokens. Window i re-reads the O tokens before its S new tokens, so tokens at
a boundary see context from both sides while each context token is pooled exactly once: a context
of T tokens yields ceil(T / r) latents for every (W, O, r) with S % r == 0.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from .config import ModelConfig, SpecialTokens
from .attention import KeyMask, backend
from .layers import Block, compute_dtype, rope_tables
from .pooling import POOLINGS


class WindowEncoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        enc = cfg.encoder
        self.cfg, self.window, self.overlap, self.ratio = enc, enc.window, enc.overlap, cfg.ratio
        self.embed = nn.Embedding(cfg.vocab_size, enc.d_model)
        self.blocks = nn.ModuleList(Block(enc.d_model, enc.n_heads, enc.mlp_ratio, cfg.attention) for _ in range(enc.n_layers))
        self.norm = nn.RMSNorm(enc.d_model)
        self.pooling = POOLINGS[cfg.pooling](cfg)
        self.backend = backend(cfg.attention)
        self._cache: dict = {}  # (B, T, device, dtype) -> RoPE tables and prepared mask

    def windows(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cut (B, T) tokens into (B, n, W) windows and their validity mask."""
        B, T = context.shape
        stride = self.window - self.overlap
        n = math.ceil(T / stride)
        pad = (self.overlap, n * stride - T)  # overlap before the first window, remainder after the last
        tokens = F.pad(context, pad, value=SpecialTokens.PAD).unfold(1, self.window, stride)  # (B, n, W)
        valid = F.pad(torch.ones_like(context, dtype=torch.bool), pad, value=False).unfold(1, self.window, stride)
        return tokens, valid

    def _attention(self, B: int, T: int, key_valid: torch.Tensor, dtype: torch.dtype):
        """RoPE tables and the prepared attention mask for windows of this shape (cached: they depend on shapes only).
        Full windows without markers need no mask at all, so SDPA keeps its flash kernels."""
        key = (B, T, key_valid.device, dtype)
        if key not in self._cache:
            L = key_valid.shape[-1]
            rope = rope_tables(torch.arange(L, device=key_valid.device), self.cfg.head_dim, dtype)
            padded = self.overlap > 0 or T % (self.window - self.overlap) > 0  # from shapes: nothing read back
            mask = self.backend.prepare(KeyMask(key_valid, self.cfg.mask == "causal")) if padded else None
            self._cache[key] = rope, mask
        return self._cache[key]

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        """context: (B, T) token ids -> latents (B, ceil(T / r), D_enc)."""
        B, T = context.shape
        tokens, valid = self.windows(context)  # (B, n, W)
        tokens, valid = rearrange(tokens, "b n w -> (b n) w"), rearrange(valid, "b n w -> (b n) w")
        x = self.embed(tokens).to(compute_dtype(tokens.device))  # (B*n, W, D)
        key_valid = valid
        markers = self.pooling.markers()
        if markers is not None:  # memory pooling: learned markers read the whole window
            x = torch.cat([x, markers.expand(x.shape[0], -1, -1).type_as(x)], dim=1)  # (B*n, W + m, D)
            key_valid = F.pad(valid, (0, markers.shape[0]), value=True)
        rope, mask = self._attention(B, T, key_valid, x.dtype)
        causal = mask is None and self.cfg.mask == "causal"
        for block in self.blocks:
            x = block(x, rope, mask, causal)
        groups = (self.window - self.overlap) // self.ratio
        latents = self.pooling.checked(  # (B*n, S / r, D)
            self.pooling(self.norm(x), valid), (x.shape[0], groups, x.shape[-1]),
            f"a pooling must return one latent per r = {self.ratio} new tokens of each window, (N, S / r, D) =",
            "build the latents from self.groups(states, valid), which splits each window's new tokens into groups of r")
        latents = rearrange(latents, "(b n) g d -> b (n g) d", b=B)
        return latents[:, : math.ceil(T / self.ratio)]  # drop groups made only of padding
