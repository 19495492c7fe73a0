"""Decoder: a causal GPT-style transformer (RMSNorm, SwiGLU, RoPE) over input embeddings, so that
latents and token embeddings interleave in one sequence."""
from __future__ import annotations

import torch
import torch.nn as nn

from .config import ModelConfig
from .layers import Block


class Decoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        dec = cfg.decoder
        self.head_dim = dec.d_model // dec.n_heads
        self.embed = nn.Embedding(cfg.vocab_size, dec.d_model)
        self.blocks = nn.ModuleList(Block(dec.d_model, dec.n_heads, dec.mlp_ratio, cfg.attention) for _ in range(dec.n_layers))
        self.norm = nn.RMSNorm(dec.d_model)
        self.head = nn.Linear(dec.d_model, cfg.vocab_size, bias=False)
        self.head.weight = self.embed.weight  # tied: fewer parameters at lab scale

    def forward(self, embeds: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """embeds: (B, L, D), rope: cos, sin tables (L, hd/2) of the positions -> final hidden states (B, L, D);
        `head` gives logits."""
        x = embeds
        for block in self.blocks:
            x = block(x, rope, causal=True)
        return self.norm(x)
