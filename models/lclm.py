"""LCLM: encoder -> pooling -> adapter -> decoder, with the decoder reading latents in place of context.

What the decoder reads before the text depends on the mode (`modes.py`); the loss is taken on `text` only.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from .adapter import ADAPTERS
from .config import ModelConfig
from .decoder import Decoder
from .encoder import WindowEncoder
from .layers import compute_dtype, flat_cat, rope_tables, split_flat
from .modes import MODES


class Frame(NamedTuple):
    before: torch.Tensor  # (len(before),) special token ids before what the decoder reads
    after: torch.Tensor  # (len(after),) and after it
    prefix_len: int  # P: decoder positions before the text
    positions: torch.Tensor  # (P + S - 1,) RoPE positions of the decoder input
    rope: tuple[torch.Tensor, torch.Tensor]  # their cos, sin tables in the compute dtype


class LCLM(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg.validate()
        self.encoder = WindowEncoder(cfg)
        self.adapter = ADAPTERS[cfg.adapter.kind](cfg)
        self.decoder = Decoder(cfg)
        self.apply(self._init_weights)
        self._frames: dict = {}  # (mode, T, S, device, dtype) -> Frame

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def components(self) -> dict[str, nn.Module]:
        """The three parts with their own learning rate, parameter count and FLOPs (pooling is the encoder's)."""
        return {"encoder": self.encoder, "adapter": self.adapter, "decoder": self.decoder}

    def compress(self, context: torch.Tensor, skip: float = 0.0) -> torch.Tensor:
        """context: (B, T) -> latents in decoder space (B, ceil(T / r), D_dec). `skip` > 0 (a training curriculum,
        `train.embedding_skip_frac`) adds that weight of each latent's mean token embedding: latents a warm decoder
        can read from the first step, so the encoder gets a useful gradient before the decoder learns to ignore it."""
        latents = self.encoder(context)  # (B, L, D_enc)
        latents = self.adapter.checked(  # (B, L, D_dec)
            self.adapter(latents), (*latents.shape[:2], self.cfg.decoder.d_model),
            "an adapter must map each latent to the decoder's width, (B, L, D_dec) =",
            "return one vector of cfg.decoder.d_model per latent, in order")
        if skip:
            latents = latents + skip * self.group_embeddings(context).to(latents.dtype)
        return latents

    def group_embeddings(self, context: torch.Tensor) -> torch.Tensor:
        """context: (B, T) -> (B, ceil(T / r), D_dec): the mean decoder embedding of the r tokens each latent stands
        for (the last group may be shorter)."""
        r, T = self.cfg.ratio, context.shape[1]
        L = -(-T // r)
        embeds = F.pad(self.decoder.embed(context), (0, 0, 0, L * r - T))  # (B, L * r, D), zero-padded
        sums = rearrange(embeds, "b (l r) d -> b l r d", r=r).sum(2)  # (B, L, D)
        counts = (T - torch.arange(L, device=context.device) * r).clamp(max=r)  # (L,) tokens in each group
        return sums / counts[:, None].to(sums.dtype)

    def frame(self, mode: str, T: int, S: int, device: torch.device, dtype: torch.dtype) -> Frame:
        """The special tokens, RoPE positions and tables of a (mode, context length T, text length S) sequence.
        They depend on shapes only, so they are built once (on the host) and cached on the device: a training step
        then sends nothing from the host and waits for nothing.

        Positions follow the full-context frame (<bos> 0, context token t at 1 + t, text from T + 1).
        With aligned latent positions a latent sits where its group's last token would, markers sit
        between integer positions, and the text keeps its full-context positions in every mode.
        """
        key = (mode, T, S, device, dtype)
        if key in self._frames:
            return self._frames[key]
        m = MODES[mode]
        before, after = torch.tensor(m.before, dtype=torch.long), torch.tensor(m.after, dtype=torch.long)
        L = m.middle_len(T, self.cfg.ratio)
        if m.reads == "latents" and self.cfg.latent_positions == "aligned":
            middle_pos, end = (torch.arange(1, L + 1) * self.cfg.ratio).clamp(max=T), T
        else:  # raw context, no context, or latents packed one after another
            middle_pos, end = torch.arange(1, L + 1), L
        # <bos> at 0, then markers before the middle at fractions of a step, markers after it likewise
        before_pos = torch.arange(len(before)) / len(before)
        after_pos = end + torch.arange(1, len(after) + 1) / (len(after) + 1)
        prefix_pos = torch.cat([before_pos, middle_pos.float(), after_pos])
        text_pos = end + 1 + torch.arange(S - 1)  # an integer: the text's position is the same in every mode
        positions = torch.cat([prefix_pos, text_pos.float()]).to(device)
        frame = Frame(before.to(device), after.to(device), len(prefix_pos), positions,
                      rope_tables(positions, self.decoder.head_dim, dtype))
        self._frames[key] = frame
        return frame

    def prefix(self, context: torch.Tensor, mode: str, frame: Frame, skip: float = 0.0,
               latents: torch.Tensor | None = None) -> torch.Tensor:
        """The decoder input before the text: embeddings (B, P, D_dec) in the frame's dtype (`skip`: `compress`;
        `latents`: the context's, already compressed)."""
        B = context.shape[0]
        m, embed = MODES[mode], self.decoder.embed
        if m.reads == "context":
            middle = embed(context)  # (B, T, D)
        elif m.reads == "nothing":
            middle = embed.weight.new_zeros(B, 0, embed.embedding_dim)
        else:
            middle = self.compress(context, skip) if latents is None else latents  # (B, ceil(T/r), D)
        parts = [embed(frame.before).expand(B, -1, -1), middle, embed(frame.after).expand(B, -1, -1)]
        return torch.cat([p.to(frame.rope[0].dtype) for p in parts], dim=1)

    def forward(self, context: torch.Tensor, text: torch.Tensor, mode: str = "compressed",
                skip: float = 0.0) -> torch.Tensor:
        """context: (B, T), text: (B, S) -> logits (B, S, V); logits[:, i] predicts text[:, i] (`skip`: `compress`)."""
        return self.forward_modes([(context, text, mode)], skip)[0]

    def forward_modes(self, parts: list[tuple[torch.Tensor, torch.Tensor, str]],
                      skip: float = 0.0) -> list[torch.Tensor]:
        """A training step's modes in one pass: [(context (B_i, T), text (B_i, S_i), mode_i)] -> [logits (B_i, S_i, V)],
        each as `forward` gives it. The contexts of every mode that reads latents are encoded as one batch, the
        decoder packs all modes into one pass and the head runs once over every text position."""
        device = parts[0][0].device
        latent = [i for i, (_, _, mode) in enumerate(parts) if MODES[mode].reads == "latents"]
        latents = {}
        if latent:
            encoded = self.compress(torch.cat([parts[i][0] for i in latent]), skip)
            latents = dict(zip(latent, encoded.split([len(parts[i][0]) for i in latent])))
        seqs, starts = [], []
        for i, (context, text, mode) in enumerate(parts):
            frame = self.frame(mode, context.shape[1], text.shape[1], device, compute_dtype(device))
            prefix = self.prefix(context, mode, frame, skip, latents.get(i))  # (B_i, P_i, D)
            seqs.append((torch.cat([prefix, self.decoder.embed(text[:, :-1]).to(prefix.dtype)], dim=1), frame.rope))
            starts.append(frame.prefix_len - 1)
        hidden = [h[:, start:] for h, start in zip(self.decoder(seqs), starts)]  # (B_i, S_i, D)
        logits = self.decoder.head(flat_cat(hidden))  # (sum B_i S_i, V)
        return split_flat(logits, [h.shape[:2] for h in hidden])
