"""Tokenizers with lclab's special tokens first: byte-level, or byte-level BPE trained offline and cached."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable

from lclab.models import SpecialTokens

from .corpus import build_once


class ByteTokenizer:
    """UTF-8 bytes shifted past the special tokens: needs no training and no files."""

    vocab_size = SpecialTokens.COUNT + 256
    fingerprint = "byte"

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [[b + SpecialTokens.COUNT for b in t.encode("utf-8")] for t in texts]


class BPETokenizer:
    """Byte-level BPE (Hugging Face `tokenizers`), trained on the training split once and cached by
    a fingerprint of corpus and vocabulary size."""

    def __init__(self, path: Path):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(path))
        self.vocab_size = self.tokenizer.get_vocab_size()
        self.fingerprint = hashlib.sha256(path.read_bytes()).hexdigest()[:16]

    @classmethod
    def train_or_load(cls, texts: Iterable[str], vocab_size: int, corpus_fingerprint: str, cache_dir: Path) -> "BPETokenizer":
        def train(tmp: Path) -> None:
            from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

            tok = Tokenizer(models.BPE())
            tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
            tok.decoder = decoders.ByteLevel()
            trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SpecialTokens.NAMES),
                                          initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
            tok.train_from_iterator(texts, trainer=trainer)
            tok.save(str(tmp))

        # trained once by whichever concurrent worker gets there first; the others wait and load it
        return cls(build_once(cache_dir / "tokenizers" / f"bpe-{vocab_size}-{corpus_fingerprint}.json", train))

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]
