"""Decoder: a causal GPT-style transformer (RMSNorm, SwiGLU, RoPE) over input embeddings, so that
latents and token embeddings interleave in one sequence."""
from __future__ import annotations

import torch
import torch.nn as nn

from .config import ModelConfig
from .layers import Block, flat_cat, split_flat


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

    def forward(self, seqs: list[tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]]) -> list[torch.Tensor]:
        """Batches of sequences, packed into one pass: [(embeds (B_i, L_i, D), rope_i)] -> [final hidden (B_i, L_i, D)]
        (`head` gives logits), where rope_i holds the cos, sin tables (L_i, hd/2) of the sequences' positions.
        Each block's projections and MLP run once over all tokens, attention per batch: a training step's modes
        then cost one pass's kernel launches, not one pass per mode (what bounds a step on a GPU)."""
        segments = tuple((e.shape[0], e.shape[1]) for e, _ in seqs)
        x = flat_cat([e for e, _ in seqs])  # (sum B_i L_i, D)
        ropes = tuple(r for _, r in seqs)
        for block in self.blocks:
            x = block(x, ropes, causal=True, segments=segments)
        x = self.norm(x)
        return split_flat(x, segments)
