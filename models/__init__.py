"""The LCLM compressor family, built from scratch: window encoder, pooling, adapter, decoder.

Swappable parts are registries by name: POOLINGS, ADAPTERS, BACKENDS (attention) and MODES (what the decoder
reads); a plugin adds entries without editing this package."""
from .accounting import flops_per_token, forward_flops, param_counts
from .adapter import ADAPTERS, Adapter
from .attention import BACKENDS
from .config import ARCHITECTURE_VERSION, AdapterConfig, DecoderConfig, EncoderConfig, ModelConfig, SpecialTokens, TransformerConfig
from .lclm import LCLM
from .modes import MODES, Mode
from .pooling import POOLINGS, Pooling

__all__ = [
    "LCLM", "ModelConfig", "TransformerConfig", "EncoderConfig", "AdapterConfig", "DecoderConfig", "SpecialTokens",
    "POOLINGS", "Pooling", "ADAPTERS", "Adapter", "BACKENDS", "MODES", "Mode",
    "ARCHITECTURE_VERSION", "param_counts", "forward_flops", "flops_per_token",
]
