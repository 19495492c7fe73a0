"""Synthetic task suite for compressors: deterministic from a seed, exact-match scored.

Token layout: the special tokens, then `n_symbols` symbols, then one token per context span
(span_recall addresses), then `n_keys` keys (kv_recall). Every task returns, for a batch,
context (B, T), text (B, S) and loss_mask (B, S): loss and accuracy only where the answer is
determined by the context.

Built-ins: reconstruction, span_recall, kv_recall, kv_offset (each class's docstring says what it does). Queries never
repeat within an example, so no answer can be copied from earlier in the text. A new task is one `Task` subclass
registered with `@TASKS.register("name")`, here or in a plugin file.
"""
from __future__ import annotations

import zlib

import numpy as np

from lclab.errors import ConfigError
from lclab.models import SpecialTokens
from lclab.registry import Registry

from .config import DataConfig

Batch = tuple[np.ndarray, np.ndarray, np.ndarray]


class Task:
    """Base: `generate(rng, B, d)` returns context (B, T), text (B, S) and loss_mask (B, S)."""

    name: str  # set by the registry
    # seeds this task's batches, fixed per task (by default from its name) so that registering a task never
    # changes another task's data; the built-ins keep the streams they always had
    stream: int | None = None

    @staticmethod
    def validate(d: DataConfig) -> None:
        """Constraints this task puts on the data config (none by default)."""

    @staticmethod
    def generate(rng: np.random.Generator, B: int, d: DataConfig) -> Batch:
        raise NotImplementedError


TASKS: Registry[type[Task]] = Registry("synthetic task", "data.tasks", "lclab.task", base=Task)


def layout(d: DataConfig) -> dict[str, int]:
    """First id of each token range, and the vocabulary size."""
    symbols = SpecialTokens.COUNT
    spans = symbols + d.n_symbols
    keys = spans + d.context_len // d.span_len
    return {"symbols": symbols, "spans": spans, "keys": keys, "vocab_size": keys + d.n_keys}


def _symbols(rng, shape, d):
    return rng.integers(0, d.n_symbols, size=shape) + layout(d)["symbols"]


@TASKS.register("reconstruction")
class Reconstruction(Task):
    """The text repeats the context (from its latents alone). Probes what a latent can hold: ratio, pooling, adapter.
    Random symbols have no neighbour structure, so window, overlap and mask have little to act on."""

    stream = 1

    @staticmethod
    def generate(rng, B, d):
        context = _symbols(rng, (B, d.context_len), d)
        text = np.full((B, d.text_len), SpecialTokens.PAD)
        n = min(d.text_len, d.context_len)
        text[:, :n] = context[:, :n]
        return context, text, text != SpecialTokens.PAD


@TASKS.register("span_recall")
class SpanRecall(Task):
    """<query> <span j>, then span j of the context, for several distinct spans. Probes addressing by position: ratio
    and latent positions. The decoder must first learn to address raw context, which the tiny config's warm start (300
    steps at lr 2e-3) does not teach: every design then scores about the same, no better than raw context at 0.05
    (benchmarks/results/measurability_recall.json). With `train.warm_steps: 600` and `train.warm_lr: 1e-3` (once per
    data, cached) raw context reads 0.75, ratio 2 / 4 / 16 score 0.64 / 0.26 / 0.11 and sequential latent positions
    0.31 against aligned 0.26, each beyond 8 seed-sds (measurability_span_recall_warm600.json)."""

    stream = 2

    @staticmethod
    def validate(d):
        if d.span_len < 1 or d.context_len % d.span_len or d.text_len < d.span_len + 2:
            raise ConfigError("data.span_len", f"span_len {d.span_len} must divide context_len {d.context_len} and fit in text_len - 2",
                              "choose a span_len dividing context_len, at most text_len - 2")

    @staticmethod
    def generate(rng, B, d):
        context = _symbols(rng, (B, d.context_len), d)
        n_spans, k = d.context_len // d.span_len, d.span_len
        n_queries = min(d.text_len // (k + 2), n_spans)
        spans = _distinct(rng, B, n_spans, n_queries)  # (B, Q)
        answers = context.reshape(B, n_spans, k)[np.arange(B)[:, None], spans]  # (B, Q, k)
        head = np.stack([np.full_like(spans, SpecialTokens.QUERY), spans + layout(d)["spans"]], axis=-1)  # (B, Q, 2)
        queries = np.concatenate([head, answers], axis=-1).reshape(B, -1)  # (B, Q * (k + 2))
        mask = np.tile(np.r_[False, False, np.ones(k, bool)], n_queries)[None].repeat(B, 0)
        return context, *_pad_text(queries, mask, d.text_len)


@TASKS.register("kv_recall")
class KVRecall(Task):
    """The context opens with key-value pairs; the text asks many distinct keys (dense supervision). The control for
    kv_offset: a key sits next to its value, so window, overlap and mask should not matter; it is meant to probe
    binding within a pooling group (ratio, pooling). At the tiny config's shapes and budget it measures a shortcut
    instead: a model that guesses, at each query, a value of the context it has not answered yet scores 0.21 without
    binding any key, and trained trials score 0.23 (benchmarks/results/kv_shortcut.json); every design scores about the
    same (measurability_recall.json). Binding comes as a late, seed-dependent jump in the decoder's lookup, sooner at
    half width (d_model 64, a one-head decoder) trained from scratch at lr 1e-3 (wsd). With no distractors after the
    pairs (context_len 32) and no padding after the questions (text_len 32, the same supervision at 3/4 of the step's
    cost), ratio 2, whose latents each hold one aligned pair, binds on 5 of 5 seeds in 1750 steps (0.988-1.000, 42-56 s
    a trial on 2 cores) and ratio 4 on none fully (0.16-0.45): ratio separates by 5.6 seed-sds, concat pooling from
    mean by 0.8 (measurability_kv_recall_d64_c32.json; search_space/presets/kv_recall_ratio.yaml runs it). The jump is
    fragile: with 16 distractors ratio 2 binds on 3 of 5 seeds in 1600 steps (kv_recall_screen_c48_1600.json); at
    the tiny lengths in 1500 steps on 4 of 5 (measurability_kv_recall_d64_concat.json), and on none without the
    recipe's 10% raw-context rows or with 25% (measurability_kv_recall_d64_nofull.json, kv_recall_screen.json)."""

    stream = 0

    @staticmethod
    def validate(d):
        if not 1 <= d.kv_pairs <= min(d.context_len // 2, d.n_keys):
            raise ConfigError("data.kv_pairs", f"{d.kv_pairs} pairs do not fit", "use 1 <= kv_pairs <= min(context_len / 2, n_keys)")

    @staticmethod
    def generate(rng, B, d):
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


@TASKS.register("kv_offset")
class KVOffset(Task):
    """kv_recall's pairs with each value `kv_offset` tokens after its key (blocks of keys, then their values), so
    that a key and its value sit in different pooling groups. An encoder whose windows span the offset can bind
    each value to its key; narrower windows, or no overlap across a window boundary, leave the binding to the
    decoder, which must find the key's latent and then the one `kv_offset` tokens later. Meant to probe window,
    overlap and mask, against kv_recall (offset 1) as its control. At the tiny config's budget it shares kv_recall's
    shortcut (kv_shortcut.json): its one large effect, a causal encoder mask at chance, is a compressor that does not
    even convey which values the context holds (kv_shortcut_causal.json), not a failure to bind."""

    stream = 3

    @staticmethod
    def validate(d):
        KVRecall.validate(d)
        if d.kv_offset < 1 or d.kv_pairs % d.kv_offset:
            raise ConfigError("data.kv_offset", f"kv_offset {d.kv_offset} must be >= 1 and divide kv_pairs {d.kv_pairs}",
                              "use e.g. kv_offset: 4 with kv_pairs: 16")

    @staticmethod
    def generate(rng, B, d):
        context, text, mask = KVRecall.generate(rng, B, d)
        P, k = d.kv_pairs, d.kv_offset
        # (B, 2P) laid out k1 v1 k2 v2 ... -> per block of k pairs: its k keys, then their k values
        pairs = context[:, : 2 * P].reshape(B, P // k, k, 2)
        context[:, : 2 * P] = pairs.transpose(0, 1, 3, 2).reshape(B, 2 * P)
        return context, text, mask


def _distinct(rng, B, n, k):
    """(B, k) draws from range(n) without replacement, independently per row."""
    return np.argsort(rng.random((B, n)), axis=1)[:, :k]


def _pad_text(text, mask, length):
    pad = length - text.shape[1]
    return (np.pad(text, ((0, 0), (0, pad)), constant_values=SpecialTokens.PAD),
            np.pad(mask, ((0, 0), (0, pad)), constant_values=False))


def generate(task: str, seed: int, index: int, B: int, d: DataConfig) -> Batch:
    """Batch `index` of `task` for a stream seeded by `seed` (same inputs, same batch, on every machine)."""
    entry = TASKS[task]
    stream = entry.stream if entry.stream is not None else zlib.crc32(task.encode())
    return _checked(task, B, d, entry.generate(np.random.default_rng([seed, index, stream]), B, d))


def _checked(task: str, B: int, d: DataConfig, batch: Batch) -> Batch:
    """The batch if it is what the model reads: a plugin task's wrong shape would fail deep in the model, and a token
    id past the vocabulary as an index error (on CUDA, a device-side assert that kills the process)."""
    context, text, mask = batch
    shapes = {"context": (context, (B, d.context_len)), "text": (text, (B, d.text_len)), "loss_mask": (mask, (B, d.text_len))}
    wrong = [f"{name} of shape {tuple(np.shape(a))} (expected {want})" for name, (a, want) in shapes.items()
             if tuple(np.shape(a)) != want]
    vocab = layout(d)["vocab_size"]
    for name, ids in (("context", context), ("text", text)):
        if not wrong and not (np.issubdtype(np.asarray(ids).dtype, np.integer) and 0 <= ids.min() and ids.max() < vocab):
            wrong.append(f"{name} ids that are not integers in [0, {vocab}) (the layout's vocabulary)")
    if not wrong and np.asarray(mask).dtype != bool:
        wrong.append(f"a loss_mask of dtype {np.asarray(mask).dtype} (expected bool)")
    if wrong:
        raise ConfigError("data.tasks", f"synthetic task '{task}' from {TASKS.origin(task)} returned {', '.join(wrong)}",
                          "return context (B, context_len), text (B, text_len) and a bool loss_mask (B, text_len) of "
                          "token ids laid out by lclab.trials.synthetic.layout")
    return batch
