"""LCLM: encoder -> pooling -> adapter -> decoder, with the decoder reading latents in place of context.

Decoder sequences by mode (loss is taken on `text` only):
  compressed:  <bos> <mem> latents </mem> text
  full:        <bos> context text              (raw context, same decoder)
  none:        <bos> text                      (no context: the floor for context use)
  reconstruct: <bos> <mem> latents </mem> <recon> text  (text = the context itself)
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .adapter import Adapter
from .config import ModelConfig, SpecialTokens
from .decoder import Decoder
from .encoder import WindowEncoder

MODES = ("compressed", "full", "none", "reconstruct")
PREFIX_TOKENS = {
    "compressed": ([SpecialTokens.BOS, SpecialTokens.MEM_START], [SpecialTokens.MEM_END]),
    "reconstruct": ([SpecialTokens.BOS, SpecialTokens.MEM_START], [SpecialTokens.MEM_END, SpecialTokens.RECON]),
    "full": ([SpecialTokens.BOS], []),
    "none": ([SpecialTokens.BOS], []),
}


class LCLM(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg.validate()
        self.encoder = WindowEncoder(cfg)
        self.adapter = Adapter(cfg)
        self.decoder = Decoder(cfg)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def components(self) -> dict[str, nn.Module]:
        """The three parts with their own learning rate, parameter count and FLOPs (pooling is the encoder's)."""
        return {"encoder": self.encoder, "adapter": self.adapter, "decoder": self.decoder}

    def compress(self, context: torch.Tensor) -> torch.Tensor:
        """context: (B, T) -> latents in decoder space (B, ceil(T / r), D_dec)."""
        return self.adapter(self.encoder(context))

    def prefix(self, context: torch.Tensor, mode: str) -> torch.Tensor:
        """The decoder input before the text: (B, P, D_dec)."""
        B = context.shape[0]
        before, after = (torch.tensor(ids, device=context.device, dtype=torch.long) for ids in PREFIX_TOKENS[mode])
        embed = self.decoder.embed
        parts = [embed(before).expand(B, -1, -1)]
        if mode == "full":
            parts.append(embed(context))  # (B, T, D)
        elif mode in ("compressed", "reconstruct"):
            parts.append(self.compress(context))  # (B, T/r, D)
        if len(after):
            parts.append(embed(after).expand(B, -1, -1))
        return torch.cat(parts, dim=1)

    def forward(self, context: torch.Tensor, text: torch.Tensor, mode: str = "compressed") -> torch.Tensor:
        """context: (B, T), text: (B, S) -> logits (B, S, V); logits[:, i] predicts text[:, i]."""
        prefix = self.prefix(context, mode)  # (B, P, D)
        P = prefix.shape[1]
        embeds = torch.cat([prefix, self.decoder.embed(text[:, :-1])], dim=1)  # (B, P + S - 1, D)
        hidden = self.decoder(embeds)
        return self.decoder.head(hidden[:, P - 1:])  # (B, S, V)
