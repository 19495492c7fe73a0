"""Parameter counts per component and analytic forward FLOPs (matmuls, 2 FLOPs per multiply-add).

Attention counts the full score matrix (QK^T and AV), which is what the kernels compute; causal
masking does not halve it. Norms, activations and embedding lookups are not counted, as in
`torch.utils.flop_counter`.
"""
from __future__ import annotations

import math

import torch.nn as nn

from .config import ModelConfig
from .lclm import PREFIX_TOKENS


def param_counts(model: nn.Module) -> dict[str, int]:
    """Parameters of encoder (incl. pooling), adapter and decoder (tied embedding counted once)."""
    counts = {name: sum(p.numel() for p in part.parameters()) for name, part in model.components().items()}
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts


def _block_flops(d: int, mlp_ratio: float, seq: int) -> int:
    """Forward FLOPs of one transformer block per token at sequence length `seq`."""
    hidden = int(2 * mlp_ratio * d / 3)
    linear = 2 * (4 * d * d + 3 * d * hidden)  # qkv + proj, SwiGLU gate/up + down
    return linear + 4 * seq * d  # + scores and weighted sum


def _mlp_flops(d_in: int, d_out: int, depth: int, hidden: int) -> int:
    dims = [d_in] + [hidden] * depth + [d_out]
    return sum(2 * a * b for a, b in zip(dims, dims[1:]))


def forward_flops(cfg: ModelConfig, context_len: int, text_len: int, mode: str = "compressed") -> dict[str, int]:
    """Forward FLOPs of one example (context_len context tokens, text_len text tokens), by component."""
    enc, dec, a, r = cfg.encoder, cfg.decoder, cfg.adapter, cfg.ratio
    n_latents = math.ceil(context_len / r)
    flops = {"encoder": 0, "adapter": 0, "decoder": 0}
    if mode in ("compressed", "reconstruct"):
        stride = cfg.stride
        n_windows = math.ceil(context_len / stride)
        groups = n_windows * stride // r
        markers = stride // r if cfg.pooling == "memory" else 0
        seq = enc.window + markers
        d = enc.d_model
        flops["encoder"] = n_windows * seq * enc.n_layers * _block_flops(d, enc.mlp_ratio, seq)
        if cfg.pooling == "concat":
            flops["encoder"] += groups * 2 * r * d * d
        elif cfg.pooling == "attention":
            flops["encoder"] += n_windows * stride * 2 * d * 2 * d + groups * (2 * d * d + 4 * r * d)
        flops["adapter"] = n_latents * _mlp_flops(d, dec.d_model, a.depth, int(a.width_mult * dec.d_model))
        if a.kind != "mlp":
            width = d if a.kind == "attn_mlp" else dec.d_model
            flops["adapter"] += n_latents * _block_flops(width, 4.0, n_latents)
    before, after = PREFIX_TOKENS[mode]
    middle = {"full": context_len, "none": 0}.get(mode, n_latents)
    seq = len(before) + middle + len(after) + text_len - 1
    flops["decoder"] = seq * dec.n_layers * _block_flops(dec.d_model, dec.mlp_ratio, seq)
    flops["decoder"] += text_len * 2 * dec.d_model * cfg.vocab_size  # LM head on the text positions
    flops["total"] = sum(flops.values())
    return flops


def flops_per_token(cfg: ModelConfig, context_len: int, text_len: int) -> dict[str, float]:
    """Forward FLOPs per example token (context + text), compressed by component and with raw context."""
    tokens = context_len + text_len
    compressed = forward_flops(cfg, context_len, text_len, "compressed")
    full = forward_flops(cfg, context_len, text_len, "full")
    out = {f"flops_per_token/{k}": v / tokens for k, v in compressed.items()}
    out["flops_per_token/full_context"] = full["total"] / tokens
    return out
