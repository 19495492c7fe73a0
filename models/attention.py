"""Attention backends behind one interface, on (B, H, T, hd) tensors.

A sequence that needs no mask beyond causality (the decoder, full encoder windows) never gets one: every backend
then calls SDPA with `is_causal`, which keeps the flash kernels. Padded or overlapping windows and memory markers
need a `KeyMask`; each backend turns it once per shape (`prepare`, cached by the caller) into what its kernel reads:

    sdpa      a dense boolean mask (every device; the CPU default)
    flex      a FlexAttention block mask, so that fully masked blocks are skipped (the CUDA default)
    xformers  a dense mask, made a per-head additive bias for xformers' kernel (CUDA, only when named)
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import cache
from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

from lclab.errors import ConfigError
from lclab.registry import Registry


@dataclass(frozen=True, eq=False)
class KeyMask:
    """Which keys each query of a batch of sequences may see: valid (non-padding) keys, at or before the query when
    causal, and always itself (so that no row is empty)."""

    valid: torch.Tensor  # (N, L) bool, True = a real token
    causal: bool

    def dense(self) -> torch.Tensor:
        """(N, 1, L, L) bool, True = may attend."""
        L = self.valid.shape[-1]
        allowed = self.valid[:, None, None, :]
        if self.causal:
            allowed = allowed & torch.ones(L, L, dtype=torch.bool, device=self.valid.device).tril()
        return allowed | torch.eye(L, dtype=torch.bool, device=self.valid.device)


class Backend:
    """Base: `prepare` turns a KeyMask into the backend's mask; `attend(q, k, v, mask, causal)` -> (B, H, T, hd),
    where `mask` is None (no padding: causal or not by `causal`) or what `prepare` returned."""

    @classmethod
    def validate(cls) -> None:
        """Refuse, with a ConfigError, a backend this environment cannot run (every built-in but xformers can)."""

    @staticmethod
    def prepare(mask: KeyMask) -> Any:
        return mask.dense()

    @staticmethod
    def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Any, causal: bool) -> torch.Tensor:
        raise NotImplementedError


BACKENDS: Registry[type[Backend]] = Registry("attention backend", "model.attention", "lclab.attention", base=Backend)


@BACKENDS.register("sdpa")
class SDPA(Backend):
    """torch's scaled_dot_product_attention with a dense mask where one is needed (every device)."""

    @staticmethod
    def attend(q, k, v, mask=None, causal=False):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal and mask is None)


@cache
def _compiled_flex():
    # FlexAttention is a fused kernel only when compiled; eager it materialises the whole score matrix
    return torch.compile(flex_attention, dynamic=False)


@BACKENDS.register("flex")
class Flex(Backend):
    """SDPA where no mask is needed, FlexAttention block masks (compiled) for padded windows and memory markers."""

    @staticmethod
    def prepare(mask):
        valid, causal = mask.valid, mask.causal

        def mask_mod(b, h, q, kv):
            keep = valid[b, kv] & (kv <= q) if causal else valid[b, kv]
            return keep | (q == kv)

        N, L = valid.shape
        return create_block_mask(mask_mod, N, None, L, L, device=valid.device)

    @staticmethod
    def attend(q, k, v, mask=None, causal=False):
        if mask is None:
            return SDPA.attend(q, k, v, None, causal)
        # inside a compiled block the call is traced into its graph; eager, it takes the compiled kernel
        flex = flex_attention if torch.compiler.is_compiling() else _compiled_flex()
        return flex(q, k, v, block_mask=mask)


@BACKENDS.register("xformers")
class XFormers(Backend):
    """xformers' memory-efficient attention (CUDA; windows in the batch are its block-diagonal packing)."""

    @classmethod
    def validate(cls):
        if importlib.util.find_spec("xformers") is None:
            raise ConfigError("model.attention", "xformers is not installed in this environment",
                              "install the gpu extra (pip install -e '.[gpu]', CUDA only), or use sdpa or flex")

    @staticmethod
    def attend(q, k, v, mask=None, causal=False):
        import xformers.ops as xops

        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, T, H, hd), xformers' layout
        if mask is not None:
            B, Tq, H, _ = q.shape
            Tk = k.shape[1]
            # a float bias whose storage's last dim is padded to a multiple of 8, as xformers requires
            bias = torch.zeros(B, H, Tq, Tk + (-Tk) % 8, dtype=q.dtype, device=q.device)
            bias[..., :Tk].masked_fill_(~mask.expand(B, H, Tq, Tk), float("-inf"))
            bias = bias[..., :Tk]
        else:
            bias = xops.LowerTriangularMask() if causal else None
        return xops.memory_efficient_attention(q, k, v, attn_bias=bias).transpose(1, 2)


def backend(name: str) -> type[Backend]:
    """The backend class a model uses for `name` (an unresolved `auto` builds with SDPA; trials resolve it first)."""
    return BACKENDS["sdpa" if name == "auto" else name]


def resolve(name: str, device: torch.device | str) -> str:
    """A concrete backend: `auto` is FlexAttention on CUDA, SDPA elsewhere (xformers only when named)."""
    if name != "auto":
        return name
    return "flex" if torch.device(device).type == "cuda" else "sdpa"
