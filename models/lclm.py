"""LCLM: encoder -> pooling -> adapter -> decoder, with the decoder reading latents in place of context.

What the decoder reads before the text depends on the mode (`modes.py`); the loss is taken on `text` only.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .adapter import ADAPTERS
from .config import ModelConfig
from .decoder import Decoder
from .encoder import WindowEncoder
from .modes import MODES


class LCLM(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg.validate()
        self.encoder = WindowEncoder(cfg)
        self.adapter = ADAPTERS[cfg.adapter.kind](cfg)
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

    def prefix(self, context: torch.Tensor, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoder input before the text: embeddings (B, P, D_dec) and RoPE positions (P,).

        Positions follow the full-context frame (<bos> 0, context token t at 1 + t, text from T + 1).
        With aligned latent positions a latent sits where its group's last token would, markers sit
        between integer positions, and the text keeps its full-context positions in every mode.
        """
        B, T = context.shape
        device = context.device
        m = MODES[mode]
        before, after = (torch.tensor(ids, device=device, dtype=torch.long) for ids in (m.before, m.after))
        embed = self.decoder.embed
        if m.reads == "context":
            middle, middle_pos = embed(context), torch.arange(1, T + 1, device=device)  # (B, T, D)
            end = T
        elif m.reads == "nothing":
            middle, middle_pos = embed.weight.new_zeros(B, 0, embed.embedding_dim), torch.zeros(0, device=device)
            end = 0
        else:
            middle = self.compress(context)  # (B, ceil(T/r), D)
            L = middle.shape[1]
            aligned = self.cfg.latent_positions == "aligned"
            middle_pos = (torch.arange(1, L + 1, device=device) * self.cfg.ratio).clamp(max=T) if aligned else \
                torch.arange(1, L + 1, device=device)
            end = T if aligned else L
        # <bos> at 0, then markers before the middle at fractions of a step, markers after it likewise
        before_pos = torch.arange(len(before), device=device) / len(before)
        after_pos = end + torch.arange(1, len(after) + 1, device=device) / (len(after) + 1)
        positions = torch.cat([before_pos, middle_pos.float(), after_pos])
        embeds = torch.cat([embed(before).expand(B, -1, -1), middle, embed(after).expand(B, -1, -1)], dim=1)
        return embeds, positions

    def forward(self, context: torch.Tensor, text: torch.Tensor, mode: str = "compressed") -> torch.Tensor:
        """context: (B, T), text: (B, S) -> logits (B, S, V); logits[:, i] predicts text[:, i]."""
        prefix, prefix_pos = self.prefix(context, mode)  # (B, P, D), (P,)
        P, S = prefix.shape[1], text.shape[1]
        embeds = torch.cat([prefix, self.decoder.embed(text[:, :-1])], dim=1)  # (B, P + S - 1, D)
        text_start = prefix_pos[-1].floor() + 1  # an integer: the text's position is the same in every mode
        positions = torch.cat([prefix_pos, text_start + torch.arange(S - 1, device=text.device)])
        hidden = self.decoder(embeds, positions)
        return self.decoder.head(hidden[:, P - 1:])  # (B, S, V)
