"""Adapter: maps encoder latents (B, L, D_enc) into the decoder's embedding space (B, L, D_dec).

Built-ins: mlp, attn_mlp, mlp_attn (each class's docstring says what it does). A new adapter is one `Adapter`
subclass registered with `@ADAPTERS.register("name")`, here or in a plugin file.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from lclab.errors import ConfigError
from lclab.registry import Registry

from .config import ModelConfig, TransformerConfig
from .layers import Block
from .part import Part


class Adapter(Part):
    """Base: subclasses implement `forward(latents)`, `n_params(cfg)` and `flops(cfg, n_latents)`."""

    field, options_field = "model.adapter.kind", "model.adapter.options"

    @classmethod
    def raw_options(cls, cfg: ModelConfig) -> dict:
        return cfg.adapter.options

    @classmethod
    def flops(cls, cfg: ModelConfig, n_latents: int) -> int:
        """Forward FLOPs of adapting `n_latents` latents of one example (matmuls only)."""
        raise NotImplementedError

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """latents: (B, L, D_enc) -> (B, L, D_dec)."""
        raise NotImplementedError


ADAPTERS: Registry[type[Adapter]] = Registry("adapter", "model.adapter.kind", "lclab.adapter", base=Adapter)


def _mlp_dims(cfg: ModelConfig) -> list[int]:
    a, d_dec = cfg.adapter, cfg.decoder.d_model
    return [cfg.encoder.d_model] + [int(a.width_mult * d_dec)] * a.depth + [d_dec]


@ADAPTERS.register("mlp")
class MLPAdapter(Adapter):
    """RMSNorm, then `depth` GELU layers of width `width_mult * D_dec` (depth 0: one linear map)."""

    def __init__(self, cfg):
        super().__init__(cfg)
        dims = _mlp_dims(cfg)
        layers: list[nn.Module] = [nn.RMSNorm(dims[0])]
        for i in range(len(dims) - 1):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < len(dims) - 2:
                layers.append(nn.GELU())
        self.mlp = nn.Sequential(*layers)

    @classmethod
    def n_params(cls, cfg):
        dims = _mlp_dims(cfg)
        return dims[0] + sum(a * b + b for a, b in zip(dims, dims[1:]))  # norm, weights and biases

    @classmethod
    def flops(cls, cfg, n_latents):
        dims = _mlp_dims(cfg)
        return n_latents * sum(2 * a * b for a, b in zip(dims, dims[1:]))

    def forward(self, latents):
        return self.mlp(latents)


class _MLPWithAttention(MLPAdapter):
    """The MLP plus one bidirectional self-attention block over the latents, shaped by `attention_block(cfg)`."""

    @classmethod
    def attention_block(cls, cfg: ModelConfig) -> TransformerConfig:
        raise NotImplementedError

    @classmethod
    def validate(cls, cfg):
        block = cls.attention_block(cfg)
        if block.d_model % block.n_heads:
            raise ConfigError("model.adapter.n_heads", f"{block.n_heads} heads do not divide the {cls.name} adapter's "
                              f"attention width {block.d_model}", "choose model.adapter.n_heads dividing that width")

    def __init__(self, cfg):
        super().__init__(cfg)
        block = self.attention_block(cfg)
        self.attn = Block(block.d_model, block.n_heads, block.mlp_ratio, cfg.attention)

    @classmethod
    def n_params(cls, cfg):
        return super().n_params(cfg) + cls.attention_block(cfg).block_params()

    @classmethod
    def flops(cls, cfg, n_latents):
        return super().flops(cfg, n_latents) + n_latents * cls.attention_block(cfg).block_flops(n_latents)


@ADAPTERS.register("attn_mlp")
class AttentionMLPAdapter(_MLPWithAttention):
    """One self-attention block over the latents at the encoder width, then the MLP."""

    @classmethod
    def attention_block(cls, cfg):
        return TransformerConfig(1, cfg.encoder.d_model, cfg.adapter.n_heads, 4.0)

    def forward(self, latents):
        return self.mlp(self.attn(latents))


@ADAPTERS.register("mlp_attn")
class MLPAttentionAdapter(_MLPWithAttention):
    """The MLP, then one self-attention block over the latents at the decoder width."""

    @classmethod
    def attention_block(cls, cfg):
        return TransformerConfig(1, cfg.decoder.d_model, cfg.adapter.n_heads, 4.0)

    def forward(self, latents):
        return self.attn(self.mlp(latents))
