"""Typed configuration of the LCLM compressor family: one object flows from YAML to `LCLM(cfg)`.

Every design axis of the search lives here with its default, and `ModelConfig.validate` rejects
impossible combinations before any tensor is allocated.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


class ConfigError(ValueError):
    """A user error in a configuration: names the field and the fix, never needs a traceback."""

    def __init__(self, field: str, problem: str, fix: str, source: str | None = None):
        self.field, self.problem, self.fix, self.source = field, problem, fix, source
        super().__init__(self.render())

    def render(self) -> str:
        where = f"{self.source}: " if self.source else ""
        # a problem or fix that already ends a sentence ("did you mean 'x'?") gets no second full stop
        end = lambda text: text if text.rstrip().endswith((".", "?", "!")) else f"{text}."  # noqa: E731
        fix = f" Fix: {end(self.fix)}" if self.fix else ""
        return f"{where}field '{self.field}': {end(self.problem)}{fix}"

    def located(self, source: str) -> "ConfigError":
        return ConfigError(self.field, self.problem, self.fix, source)


class SpecialTokens:
    """Token ids every lclab vocabulary reserves (tokenizers put them first)."""

    PAD, BOS, EOS, MEM_START, MEM_END, RECON, QUERY, SEP = range(8)
    COUNT = 8
    NAMES = ("<pad>", "<bos>", "<eos>", "<mem>", "</mem>", "<recon>", "<query>", "<sep>")


@dataclass
class EncoderConfig:
    n_layers: int = 2
    d_model: int = 128
    n_heads: int = 4
    mlp_ratio: float = 4.0
    window: int = 16  # W: tokens the encoder sees at once
    overlap: int = 0  # O: tokens of the previous window re-read for context; windows step W - O
    mask: Literal["causal", "bidirectional"] = "bidirectional"


@dataclass
class AdapterConfig:
    kind: Literal["mlp", "attn_mlp", "mlp_attn"] = "mlp"
    depth: int = 1  # hidden layers; 0 = one linear map
    width_mult: float = 2.0  # hidden width as a multiple of the decoder width
    n_heads: int = 4  # for the self-attention layer of attn_mlp / mlp_attn


@dataclass
class DecoderConfig:
    n_layers: int = 2
    d_model: int = 128
    n_heads: int = 4
    mlp_ratio: float = 4.0


@dataclass
class ModelConfig:
    vocab_size: int = 512
    ratio: int = 4  # r: context tokens per latent
    pooling: str = "mean"
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    attention: str = "sdpa"  # backend name, or "auto" (xformers on CUDA when it works)
    # decoder RoPE positions of latents: "aligned" puts latent j where its group's last context token
    # would sit with raw context (text positions then match the full-context mode); "sequential" packs them
    latent_positions: Literal["aligned", "sequential"] = "aligned"

    @property
    def stride(self) -> int:
        return self.encoder.window - self.encoder.overlap

    def validate(self) -> "ModelConfig":
        from .attention import BACKENDS
        from .pooling import POOLINGS

        enc, dec = self.encoder, self.decoder
        if self.pooling not in POOLINGS:
            raise ConfigError("model.pooling", f"unknown pooling '{self.pooling}'",
                              f"use one of {sorted(POOLINGS)}")
        if self.attention != "auto" and self.attention not in BACKENDS:
            raise ConfigError("model.attention", f"unknown attention backend '{self.attention}'",
                              f"use 'auto' or one of {sorted(BACKENDS)}")
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
        for name, d, h in (("encoder", enc.d_model, enc.n_heads), ("decoder", dec.d_model, dec.n_heads)):
            if d % h or (d // h) % 2:
                raise ConfigError(f"model.{name}.n_heads", f"d_model {d} / n_heads {h} must be an even integer head size",
                                  "choose n_heads dividing d_model with an even quotient (RoPE rotates pairs)")
        if self.latent_positions not in ("aligned", "sequential"):
            raise ConfigError("model.latent_positions", f"unknown scheme '{self.latent_positions}'", "use aligned or sequential")
        if self.adapter.kind not in ("mlp", "attn_mlp", "mlp_attn"):
            raise ConfigError("model.adapter.kind", f"unknown adapter '{self.adapter.kind}'", "use mlp, attn_mlp or mlp_attn")
        if self.adapter.depth < 0:
            raise ConfigError("model.adapter.depth", "depth must be >= 0", "use 0 (one linear map) or more hidden layers")
        if self.vocab_size <= SpecialTokens.COUNT:
            raise ConfigError("model.vocab_size", f"vocab_size {self.vocab_size} leaves no room beside the special tokens",
                              f"use more than {SpecialTokens.COUNT}")
        return self
