"""The LCLM compressor family, built from scratch: window encoder, pooling, adapter, decoder."""
from .accounting import flops_per_token, forward_flops, param_counts
from .attention import BACKENDS
from .config import AdapterConfig, ConfigError, DecoderConfig, EncoderConfig, ModelConfig, SpecialTokens
from .lclm import LCLM, MODES
from .pooling import POOLINGS

__all__ = [
    "LCLM", "MODES", "POOLINGS", "BACKENDS", "ModelConfig", "EncoderConfig", "AdapterConfig", "DecoderConfig",
    "ConfigError", "SpecialTokens", "param_counts", "forward_flops", "flops_per_token",
]
