"""Synthetic task suite for compressors: deterministic from a seed, exact-match scored.

Token layout: the special tokens, then `n_symbols` symbols, then one token per context span
(span_recall addresses), then `n_keys` keys (kv_recall). Every task returns, for a batch,
context (B, T), text (B, S) and loss_mask (B, S): loss and accuracy only where the answer is
determined by the context.

- reconstruction: the text repeats the context (from its latents alone)
- span_recall:    <query> <span j> then span j of the context, for several distinct spans
- kv_recall:      the context opens with key-value pairs; the text asks many distinct keys (dense supervision)

Queries never repeat within an example, so no answer can be copied from earlier in the text.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from models import SpecialTokens

from .config import DataConfig

Batch = tuple[np.ndarray, np.ndarray, np.ndarray]
TASKS: dict[str, Callable[[np.random.Generator, int, DataConfig], Batch]] = {}


def register(name: str):
    def wrap(fn):
        TASKS[name] = fn
        return fn
    return wrap


def layout(d: DataConfig) -> dict[str, int]:
    """First id of each token range, and the vocabulary size."""
    symbols = SpecialTokens.COUNT
    spans = symbols + d.n_symbols
    keys = spans + d.context_len // d.span_len
    return {"symbols": symbols, "spans": spans, "keys": keys, "vocab_size": keys + d.n_keys}


def _symbols(rng, shape, d):
    return rng.integers(0, d.n_symbols, size=shape) + layout(d)["symbols"]


@register("reconstruction")
def reconstruction(rng, B, d):
    context = _symbols(rng, (B, d.context_len), d)
    text = np.full((B, d.text_len), SpecialTokens.PAD)
    n = min(d.text_len, d.context_len)
    text[:, :n] = context[:, :n]
    return context, text, text != SpecialTokens.PAD


@register("span_recall")
def span_recall(rng, B, d):
    context = _symbols(rng, (B, d.context_len), d)
    n_spans, k = d.context_len // d.span_len, d.span_len
    n_queries = min(d.text_len // (k + 2), n_spans)
    spans = _distinct(rng, B, n_spans, n_queries)  # (B, Q)
    answers = context.reshape(B, n_spans, k)[np.arange(B)[:, None], spans]  # (B, Q, k)
    head = np.stack([np.full_like(spans, SpecialTokens.QUERY), spans + layout(d)["spans"]], axis=-1)  # (B, Q, 2)
    queries = np.concatenate([head, answers], axis=-1).reshape(B, -1)  # (B, Q * (k + 2))
    mask = np.tile(np.r_[False, False, np.ones(k, bool)], n_queries)[None].repeat(B, 0)
    return context, *_pad_text(queries, mask, d.text_len)


@register("kv_recall")
def kv_recall(rng, B, d):
    P = d.kv_pairs
    keys = _distinct(rng, B, d.n_keys, P) + layout(d)["keys"]
    values = _symbols(rng, (B, P), d)
    context = _symbols(rng, (B, d.context_len), d)  # distractor symbols after the pairs
    context[:, : 2 * P] = np.stack([keys, values], axis=-1).reshape(B, 2 * P)
    asked = _distinct(rng, B, P, min(d.text_len // 2, P))  # (B, Q)
    rows = np.arange(B)[:, None]
    queries = np.stack([keys[rows, asked], values[rows, asked]], axis=-1).reshape(B, -1)  # (B, 2Q): key, value, ...
    mask = np.tile(np.array([False, True]), asked.shape[1])[None].repeat(B, 0)
    return context, *_pad_text(queries, mask, d.text_len)


def _distinct(rng, B, n, k):
    """(B, k) draws from range(n) without replacement, independently per row."""
    return np.argsort(rng.random((B, n)), axis=1)[:, :k]


def _pad_text(text, mask, length):
    pad = length - text.shape[1]
    return (np.pad(text, ((0, 0), (0, pad)), constant_values=SpecialTokens.PAD),
            np.pad(mask, ((0, 0), (0, pad)), constant_values=False))


def generate(task: str, seed: int, index: int, B: int, d: DataConfig) -> Batch:
    """Batch `index` of `task` for a stream seeded by `seed` (same inputs, same batch, on every machine)."""
    rng = np.random.default_rng([seed, index, sorted(TASKS).index(task)])
    return TASKS[task](rng, B, d)
