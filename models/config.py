"""Typed configuration of the LCLM compressor family: one object flows from YAML to `LCLM(cfg)`.

Every design axis of the search lives here with its default. `ModelConfig.validate` checks what the whole model
needs and asks the chosen pooling, adapter and attention backend (registries by name) to check their own part,
before any tensor is allocated.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from lclab.errors import ConfigError, in_range


# bumped whenever the same config builds a different computation, so that weights cached under the old one (the
# warm decoders) are never loaded into the new one. 2: half-split RoPE, SwiGLU hidden sizes rounded to tiles.
ARCHITECTURE_VERSION = 2


class SpecialTokens:
    """Token ids every lclab vocabulary reserves (tokenizers put them first)."""

    PAD, BOS, EOS, MEM_START, MEM_END, RECON, QUERY, SEP = range(8)
    COUNT = 8
    NAMES = ("<pad>", "<bos>", "<eos>", "<mem>", "</mem>", "<recon>", "<query>", "<sep>")


def swiglu_hidden(d_model: int, mlp_ratio: float) -> int:
    """2/3 keeps SwiGLU's parameter count near a GELU MLP of the same ratio (LLaMA); rounded up to a multiple of
    128 (64 below d_model 512) so that its GEMMs take the tensor cores' full tiles (1365 -> 1408 at d_model 512)."""
    multiple = 128 if d_model >= 512 else 64
    return -(-int(2 * mlp_ratio * d_model / 3) // multiple) * multiple


@dataclass
class TransformerConfig:
    """A stack of pre-norm blocks (RoPE attention, SwiGLU MLP): the encoder's and the decoder's shared shape."""

    n_layers: int = 2
    d_model: int = 128
    n_heads: int = 4
    mlp_ratio: float = 4.0

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def block_flops(self, seq: int, causal_half: bool = False) -> int:
        """Forward FLOPs of one block per token at sequence length `seq`: qkv + proj, SwiGLU gate/up + down,
        then scores and weighted sum (over every key, as the kernels compute them; `causal_half` counts the half
        of the score matrix a causal kernel needs)."""
        d, hidden = self.d_model, swiglu_hidden(self.d_model, self.mlp_ratio)
        return 2 * (4 * d * d + 3 * d * hidden) + (2 if causal_half else 4) * seq * d

    def block_params(self) -> int:
        """Parameters of one block: two norms, qkv + proj, SwiGLU gate/up + down."""
        d, hidden = self.d_model, swiglu_hidden(self.d_model, self.mlp_ratio)
        return 2 * d + 4 * d * d + 3 * d * hidden

    def validate(self, where: str) -> None:
        in_range(f"{where}.n_layers", self.n_layers, 1)
        in_range(f"{where}.n_heads", self.n_heads, 1)
        if not self.mlp_ratio > 0:
            raise ConfigError(f"{where}.mlp_ratio", f"{self.mlp_ratio} leaves the MLP no hidden units", "use a positive ratio, e.g. 4")
        if self.d_model % self.n_heads or self.head_dim % 2 or self.head_dim < 2:
            raise ConfigError(f"{where}.n_heads", f"d_model {self.d_model} / n_heads {self.n_heads} must be an even integer head size",
                              "choose n_heads dividing d_model with an even quotient (RoPE rotates pairs)")


@dataclass
class EncoderConfig(TransformerConfig):
    window: int = 16  # W: tokens the encoder sees at once
    overlap: int = 0  # O: tokens of the previous window re-read for context; windows step W - O
    mask: Literal["causal", "bidirectional"] = "bidirectional"


@dataclass
class DecoderConfig(TransformerConfig):
    pass


@dataclass
class AdapterConfig:
    kind: str = "mlp"  # a registered adapter (`lclab parts`)
    depth: int = 1  # hidden layers; 0 = one linear map
    width_mult: float = 2.0  # hidden width as a multiple of the decoder width
    n_heads: int = 4  # for the self-attention layer of attn_mlp / mlp_attn
    options: dict[str, Any] = field(default_factory=dict)  # the chosen adapter's own fields, if it declares any


@dataclass
class ModelConfig:
    vocab_size: int = 512
    ratio: int = 4  # r: context tokens per latent
    pooling: str = "mean"  # a registered pooling (`lclab parts`)
    pooling_options: dict[str, Any] = field(default_factory=dict)  # the chosen pooling's own fields, if it declares any
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    attention: str = "sdpa"  # a registered backend, or "auto" (flex on CUDA, sdpa elsewhere; `attention.resolve`)
    # decoder RoPE positions of latents: "aligned" puts latent j where its group's last context token
    # would sit with raw context (text positions then match the full-context mode); "sequential" packs them
    latent_positions: Literal["aligned", "sequential"] = "aligned"

    @property
    def stride(self) -> int:
        return self.encoder.window - self.encoder.overlap

    def validate(self) -> "ModelConfig":
        from .adapter import ADAPTERS
        from .attention import BACKENDS
        from .pooling import POOLINGS

        enc = self.encoder
        pooling, adapter = POOLINGS[self.pooling], ADAPTERS[self.adapter.kind]  # unknown names first: the likeliest slip
        if self.attention != "auto":
            BACKENDS[self.attention].validate()
        if not 2 <= self.ratio <= 32:
            raise ConfigError("model.ratio", f"compression ratio {self.ratio} is outside 2..32",
                              "choose r in 2..32 (4, 8, 16 are the usual values)")
        if enc.mask not in ("causal", "bidirectional"):
            raise ConfigError("model.encoder.mask", f"unknown mask '{enc.mask}'", "use 'causal' or 'bidirectional'")
        if not 0 <= enc.overlap < enc.window:
            raise ConfigError("model.encoder.overlap", f"overlap {enc.overlap} must satisfy 0 <= overlap < window ({enc.window})",
                              "lower model.encoder.overlap below model.encoder.window")
        if self.stride % self.ratio:
            raise ConfigError("model.encoder.window",
                              f"window stride W - O = {enc.window} - {enc.overlap} = {self.stride} is not divisible by ratio {self.ratio}",
                              "pick window and overlap so that (window - overlap) % ratio == 0")
        enc.validate("model.encoder")
        self.decoder.validate("model.decoder")
        if self.latent_positions not in ("aligned", "sequential"):
            raise ConfigError("model.latent_positions", f"unknown scheme '{self.latent_positions}'", "use aligned or sequential")
        if self.adapter.depth < 0:
            raise ConfigError("model.adapter.depth", "depth must be >= 0", "use 0 (one linear map) or more hidden layers")
        if self.vocab_size <= SpecialTokens.COUNT:
            raise ConfigError("model.vocab_size", f"vocab_size {self.vocab_size} leaves no room beside the special tokens",
                              f"use more than {SpecialTokens.COUNT}")
        pooling.check(self)
        adapter.check(self)
        return self
