"""A researcher's own pooling and adapter, in a file outside lclab: a config or space names it under `plugins:`.
The README's "Add your own design axis" is copied from here; tests/test_plugins.py sweeps and reports it."""
from dataclasses import dataclass

import torch.nn as nn

from lclab.errors import ConfigError
from lclab.models import ADAPTERS, POOLINGS, Adapter, Pooling


@POOLINGS.register("softmax_gate")
class SoftmaxGatePooling(Pooling):
    """A learned score per token; each latent is its group's softmax-weighted average."""

    @dataclass
    class Options:  # model.pooling_options.temperature
        temperature: float = 1.0

    @classmethod
    def validate(cls, cfg):
        if cls.options_of(cfg).temperature <= 0:
            raise ConfigError("model.pooling_options.temperature", "must be positive", "use e.g. 1.0")

    @classmethod
    def n_params(cls, cfg):
        return cfg.encoder.d_model  # the score's weight (a bias would not move a softmax)

    @classmethod
    def flops(cls, cfg, n_windows):
        return n_windows * cfg.stride * 2 * cfg.encoder.d_model  # one score per new token

    def __init__(self, cfg):
        super().__init__(cfg)
        self.score = nn.Linear(cfg.encoder.d_model, 1, bias=False)

    def forward(self, states, valid):
        g, v = self.groups(states, valid)  # (N, G, r, D), (N, G, r)
        w = (self.score(g).squeeze(-1) / self.options.temperature).masked_fill(~v, -1e9).softmax(-1)  # (N, G, r)
        return (w.unsqueeze(-1) * g).sum(2)  # (N, G, D)


@ADAPTERS.register("linear")
class LinearAdapter(Adapter):
    """One linear map into the decoder's width, no norm."""

    @classmethod
    def n_params(cls, cfg):
        return (cfg.encoder.d_model + 1) * cfg.decoder.d_model

    @classmethod
    def flops(cls, cfg, n_latents):
        return n_latents * 2 * cfg.encoder.d_model * cfg.decoder.d_model

    def __init__(self, cfg):
        super().__init__(cfg)
        self.proj = nn.Linear(cfg.encoder.d_model, cfg.decoder.d_model)

    def forward(self, latents):
        return self.proj(latents)  # (B, L, D_enc) -> (B, L, D_dec)
