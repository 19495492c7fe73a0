"""The base of a registered model part (a pooling, an adapter): a module that owns its options, their validation,
its parameter count and its analytic FLOPs, so that adding one is one class and its registration."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from lclab.errors import ConfigError
from lclab.registry import origin
from lclab.schema import from_dict

from .config import ModelConfig


class Part(nn.Module):
    """Subclasses set `field` (the config field that names them), `options_field` (where their options live) and
    may declare an `Options` dataclass of their own fields, validated strictly and handed to the module as
    `self.options`."""

    name: str  # set by the registry
    field: str
    options_field: str

    @dataclass
    class Options:
        pass

    @classmethod
    def raw_options(cls, cfg: ModelConfig) -> dict:
        raise NotImplementedError

    @classmethod
    def options_of(cls, cfg: ModelConfig):
        return from_dict(cls.Options, cls.raw_options(cfg), f"{cls.options_field}.")

    @classmethod
    def check(cls, cfg: ModelConfig) -> None:
        """Options parse, then the part's own constraints (`validate`) hold; ConfigError otherwise."""
        cls.options_of(cfg)
        cls.validate(cfg)

    @classmethod
    def validate(cls, cfg: ModelConfig) -> None:
        """Constraints this part puts on the rest of the config (none by default)."""

    @classmethod
    def n_params(cls, cfg: ModelConfig) -> int:
        """Parameters of this part, analytically (the registry test checks it against the built module)."""
        raise NotImplementedError

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.options = self.options_of(cfg)

    def checked(self, out: torch.Tensor, expected: tuple[int, ...], contract: str, fix: str) -> torch.Tensor:
        """`out` if it has the shape the model reads next. A part returning another shape (a plugin's bug) would
        otherwise be sliced or broadcast into a model that trains, but not the one its config describes."""
        if tuple(out.shape) != expected:
            raise ConfigError(self.field, f"'{self.name}' from {origin(type(self))} returned a tensor of shape "
                              f"{tuple(out.shape)} where {contract} {expected}", fix)
        return out
