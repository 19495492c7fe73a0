"""Adapter: maps encoder latents into the decoder's embedding space.

- mlp:      RMSNorm, then `depth` hidden layers of width `width_mult * D_dec` (depth 0 = one linear map)
- attn_mlp: one bidirectional self-attention block over the latents (encoder width), then the MLP
- mlp_attn: the MLP, then one self-attention block over the latents (decoder width)
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .config import ModelConfig
from .layers import Block


def _mlp(d_in: int, d_out: int, depth: int, hidden: int) -> nn.Sequential:
    dims = [d_in] + [hidden] * depth + [d_out]
    layers: list[nn.Module] = [nn.RMSNorm(d_in)]
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


class Adapter(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        a, d_enc, d_dec = cfg.adapter, cfg.encoder.d_model, cfg.decoder.d_model
        self.kind = a.kind
        self.mlp = _mlp(d_enc, d_dec, a.depth, int(a.width_mult * d_dec))
        attn_width = d_enc if a.kind == "attn_mlp" else d_dec
        self.attn = Block(attn_width, a.n_heads, 4.0, cfg.attention) if a.kind != "mlp" else None

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """latents: (B, L, D_enc) -> (B, L, D_dec)."""
        if self.kind == "attn_mlp":
            latents = self.attn(latents)
        x = self.mlp(latents)
        if self.kind == "mlp_attn":
            x = self.attn(x)
        return x
