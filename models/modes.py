"""Decoder modes: what the decoder reads before the text, in one table used by the model, the FLOP accounting,
the training mix and validation.

    compressed:  <bos> <mem> latents </mem> text
    full:        <bos> context text              (raw context, same decoder)
    none:        <bos> text                      (no context: the floor for context use)
    reconstruct: <bos> <mem> latents </mem> <recon> text  (text = the context itself)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from lclab.registry import Registry

from .config import SpecialTokens as Tok

__all__ = ["Mode", "MODES"]


@dataclass(frozen=True)
class Mode:
    description: str
    before: tuple[int, ...]  # special tokens before what the decoder reads
    reads: Literal["latents", "context", "nothing"]
    after: tuple[int, ...] = ()  # special tokens after it
    target: Literal["text", "context"] = "text"  # what the loss is taken on
    share: str | None = None  # the train config field that gives this mode's share of every training batch

    def middle_len(self, context_len: int, ratio: int) -> int:
        """Decoder positions taken by what this mode reads in place of the context."""
        return {"latents": math.ceil(context_len / ratio), "context": context_len, "nothing": 0}[self.reads]

    def scored_len(self, context_len: int, text_len: int) -> int:
        """Tokens the loss is taken on: the text, or the whole context when the target is the context."""
        return context_len if self.target == "context" else text_len

    def decoder_len(self, context_len: int, scored_len: int, ratio: int) -> int:
        """Decoder positions of one example: special tokens, what the mode reads, then the scored tokens but the last."""
        return len(self.before) + self.middle_len(context_len, ratio) + len(self.after) + scored_len - 1


MODES: Registry[Mode] = Registry("decoder mode", "mode", "lclab.mode", base=Mode, instances=True)
MODES.register("compressed", Mode("the decoder reads the latents in place of the context",
                                  (Tok.BOS, Tok.MEM_START), "latents", (Tok.MEM_END,)))
MODES.register("full", Mode("the decoder reads the raw context (the ceiling for context use)",
                            (Tok.BOS,), "context", share="full_context_share"))
MODES.register("none", Mode("the decoder reads no context (the floor for context use)", (Tok.BOS,), "nothing",
                            share="none_share"))
MODES.register("reconstruct", Mode("the decoder rebuilds the context from its latents",
                                   (Tok.BOS, Tok.MEM_START), "latents", (Tok.MEM_END, Tok.RECON), target="context",
                                   share="reconstruction_share"))
