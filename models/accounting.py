"""Parameter counts per component and analytic forward FLOPs (matmuls, 2 FLOPs per multiply-add).

Attention counts the full score matrix (QK^T and AV), which is what `torch.utils.flop_counter` counts and the
PaLM MFU convention uses; `causal_half=True` counts half of it for causal attention (the decoder, a causal encoder),
what a causal kernel executes. Norms, activations and embedding lookups are not counted, as in
`torch.utils.flop_counter`.
"""
from __future__ import annotations

import math

import torch.nn as nn

from .adapter import ADAPTERS
from .config import ModelConfig
from .modes import MODES
from .pooling import POOLINGS


def param_counts(model: nn.Module) -> dict[str, int]:
    """Parameters of encoder (incl. pooling), adapter and decoder (tied embedding counted once)."""
    counts = {name: sum(p.numel() for p in part.parameters()) for name, part in model.components().items()}
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts


def forward_flops(cfg: ModelConfig, context_len: int, text_len: int, mode: str = "compressed",
                  causal_half: bool = False) -> dict[str, int]:
    """Forward FLOPs of one example (context_len context tokens, text_len text tokens), by component."""
    enc, dec, m = cfg.encoder, cfg.decoder, MODES[mode]
    flops = {"encoder": 0, "adapter": 0, "decoder": 0}
    if m.reads == "latents":
        n_windows = math.ceil(context_len / cfg.stride)
        pooling = POOLINGS[cfg.pooling]
        seq = enc.window + pooling.n_markers(cfg)
        enc_half = causal_half and enc.mask == "causal"
        flops["encoder"] = n_windows * seq * enc.n_layers * enc.block_flops(seq, enc_half) + pooling.flops(cfg, n_windows)
        flops["adapter"] = ADAPTERS[cfg.adapter.kind].flops(cfg, math.ceil(context_len / cfg.ratio))
    seq = m.decoder_len(context_len, text_len, cfg.ratio)
    flops["decoder"] = seq * dec.n_layers * dec.block_flops(seq, causal_half)
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
