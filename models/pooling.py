"""Pooling: turns encoder states of each window into latents, one per group of r new tokens.

A window holds W tokens: O overlap tokens re-read from the previous window, then S = W - O new
tokens, i.e. S / r groups. Every pooling maps (N, W + m, D) window states to (N, S / r, D).

Built-ins: mean, max, last, concat, attention, memory (each class's docstring says what it does).

A new pooling is one `Pooling` subclass registered with `@POOLINGS.register("name")`, here or in a plugin file:
its docstring's first line describes it, `n_params` and `flops` give its cost, `validate` its constraints.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from lclab.registry import Registry

from .config import ModelConfig
from .part import Part


class Pooling(Part):
    """Base: subclasses implement `forward(states, valid)`; `n_markers(cfg)` tokens are appended to each window."""

    field, options_field = "model.pooling", "model.pooling_options"

    @classmethod
    def raw_options(cls, cfg: ModelConfig) -> dict:
        return cfg.pooling_options

    @classmethod
    def n_markers(cls, cfg: ModelConfig) -> int:
        """Learned tokens appended to every window (their encoder outputs may become the latents)."""
        return 0

    @classmethod
    def n_params(cls, cfg: ModelConfig) -> int:
        return 0

    @classmethod
    def flops(cls, cfg: ModelConfig, n_windows: int) -> int:
        """Forward FLOPs of pooling `n_windows` windows (matmuls only, as torch.utils.flop_counter counts)."""
        return 0

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.overlap, self.window, self.ratio = cfg.encoder.overlap, cfg.encoder.window, cfg.ratio

    def markers(self) -> torch.Tensor | None:
        """(n_markers, D) embeddings appended to every window, or None."""
        return None

    def groups(self, states, valid):
        """The new tokens of each window split into groups of r: (N, G, r, D) and (N, G, r)."""
        new = states[:, self.overlap:self.window]  # (N, S, D)
        new_valid = valid[:, self.overlap:self.window]  # (N, S)
        return (rearrange(new, "n (g r) d -> n g r d", r=self.ratio),
                rearrange(new_valid, "n (g r) -> n g r", r=self.ratio))

    def forward(self, states: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """states: (N, W + n_markers, D), valid: (N, W) bool -> latents (N, S / r, D)."""
        raise NotImplementedError


POOLINGS: Registry[type[Pooling]] = Registry("pooling", "model.pooling", "lclab.pooling", base=Pooling)


@POOLINGS.register("mean")
class MeanPooling(Pooling):
    """Average of the group's tokens."""

    def forward(self, states, valid):
        g, v = self.groups(states, valid)
        v = v.unsqueeze(-1).type_as(g)  # (N, G, r, 1)
        return (g * v).sum(2) / v.sum(2).clamp(min=1)


@POOLINGS.register("max")
class MaxPooling(Pooling):
    """Element-wise max over the group's tokens."""

    def forward(self, states, valid):
        g, v = self.groups(states, valid)
        pooled = g.masked_fill(~v.unsqueeze(-1), float("-inf")).amax(2)  # (N, G, D)
        # groups made only of padding (dropped later) must stay finite
        return torch.where(v.any(2, keepdim=True), pooled, torch.zeros_like(pooled))


@POOLINGS.register("last")
class LastPooling(Pooling):
    """State of the group's last token."""

    def forward(self, states, valid):
        g, v = self.groups(states, valid)
        # padding only ever trails a group, so the last real token sits at count - 1
        last = (v.sum(2) - 1).clamp(min=0)  # (N, G)
        index = last[..., None, None].expand(-1, -1, 1, g.shape[-1])
        return g.gather(2, index).squeeze(2)


@POOLINGS.register("concat")
class ConcatPooling(Pooling):
    """The group's r states concatenated, projected back to the encoder width."""

    @classmethod
    def n_params(cls, cfg):
        return cfg.ratio * cfg.encoder.d_model ** 2

    @classmethod
    def flops(cls, cfg, n_windows):
        groups = n_windows * cfg.stride // cfg.ratio
        return groups * 2 * cls.n_params(cfg)

    def __init__(self, cfg):
        super().__init__(cfg)
        d = cfg.encoder.d_model
        self.proj = nn.Linear(cfg.ratio * d, d, bias=False)

    def forward(self, states, valid):
        g, v = self.groups(states, valid)
        g = g * v.unsqueeze(-1).type_as(g)
        return self.proj(rearrange(g, "n g r d -> n g (r d)"))


@POOLINGS.register("attention")
class AttentionPooling(Pooling):
    """A learned query per latent slot attends over its group (Perceiver-style)."""

    @classmethod
    def n_params(cls, cfg):
        d = cfg.encoder.d_model
        return cfg.stride // cfg.ratio * d + d + 3 * d * d  # queries, norm, kv, proj

    @classmethod
    def flops(cls, cfg, n_windows):
        d, r = cfg.encoder.d_model, cfg.ratio
        groups = n_windows * cfg.stride // r
        return n_windows * cfg.stride * 2 * d * 2 * d + groups * (2 * d * d + 4 * r * d)  # kv, then q.k, a.v, proj

    def __init__(self, cfg):
        super().__init__(cfg)
        d, self.n_heads = cfg.encoder.d_model, cfg.encoder.n_heads
        n_slots = cfg.stride // cfg.ratio
        self.queries = nn.Parameter(torch.randn(n_slots, d) * 0.02)  # one per latent slot of a window
        self.norm = nn.RMSNorm(d)
        self.kv = nn.Linear(d, 2 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)

    def forward(self, states, valid):
        g, v = self.groups(states, valid)
        N, G = v.shape[:2]
        k, val = rearrange(self.kv(self.norm(g)), "n g r (two h hd) -> two (n g) h r hd", two=2, h=self.n_heads)
        q = rearrange(self.queries, "g (h hd) -> g h 1 hd", h=self.n_heads).repeat(N, 1, 1, 1)  # (N*G, H, 1, hd)
        mask = rearrange(v | ~v.any(-1, keepdim=True), "n g r -> (n g) 1 1 r")  # all-pad groups attend anywhere
        # one query over r keys: SDPA's small dense mask whatever the backend
        pooled = F.scaled_dot_product_attention(q, k, val, attn_mask=mask)  # (N*G, H, 1, hd)
        return self.proj(rearrange(pooled, "(n g) h 1 hd -> n g (h hd)", n=N))


@POOLINGS.register("memory")
class MemoryPooling(Pooling):
    """S / r learned marker tokens appended to each window; their outputs are the latents (ICAE / gist style)."""

    @classmethod
    def n_markers(cls, cfg):
        return cfg.stride // cfg.ratio

    @classmethod
    def n_params(cls, cfg):
        return cls.n_markers(cfg) * cfg.encoder.d_model

    def __init__(self, cfg):
        super().__init__(cfg)
        self.marker_embeddings = nn.Parameter(torch.randn(self.n_markers(cfg), cfg.encoder.d_model) * 0.02)

    def markers(self):
        return self.marker_embeddings

    def forward(self, states, valid):
        return states[:, self.window:]  # (N, S / r, D): the markers' outputs
