"""Batches for a trial: synthetic tasks or tokenized text, as a `LightningDataModule`.

Training batch `i` is a pure function of (seed, i), so a run resumed at step k sees exactly the
batches an uninterrupted run would have seen, and a DDP run's ranks split that same batch. Validation data never depends on the trial seed:
every trial of a study is scored on the same examples.
"""
from __future__ import annotations

import hashlib
from typing import Iterator

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from lclab.errors import ConfigError
from lclab.models import MODES

from .config import DataConfig, TrialConfig
from .corpus import cache_dir, load_corpus, token_shard
from .distributed import rank_world
from .synthetic import generate, layout
from .tokenizer import BPETokenizer, ByteTokenizer

VAL_SEED = 1_000_003  # validation stream, shared by all trials
UNIGRAM_SEED, UNIGRAM_BATCHES = 1_000_033, 64  # training batches counted for the unigram floor (not the validation stream)


def _tensors(context, text, mask, task=None) -> dict:
    batch = {"context": torch.as_tensor(np.asarray(context), dtype=torch.long),
             "text": torch.as_tensor(np.asarray(text), dtype=torch.long),
             "loss_mask": torch.as_tensor(np.asarray(mask), dtype=torch.bool)}
    if task is not None:
        batch["task"] = task
    return batch


class SyntheticSource:
    def __init__(self, d: DataConfig):
        self.d = d
        self.vocab_size = layout(d)["vocab_size"]
        self.fingerprint = "synthetic-" + hashlib.sha256(repr(sorted(vars(d).items())).encode()).hexdigest()[:16]

    def train_batch(self, seed: int, step: int, B: int) -> dict:
        tasks = self.d.tasks
        sizes = [B // len(tasks) + (i < B % len(tasks)) for i in range(len(tasks))]
        parts = [generate(t, seed, step, n, self.d) for t, n in zip(tasks, sizes) if n]
        return _tensors(*(np.concatenate(p) for p in zip(*parts)))

    def val_batches(self, B: int) -> list[dict]:
        n_batches = -(-self.d.val_examples // B)
        return [_tensors(*generate(t, VAL_SEED, i, B, self.d), task=t) for t in self.d.tasks for i in range(n_batches)]


class TextSource:
    def __init__(self, d: DataConfig):
        self.d = d
        corpus = load_corpus(d)
        if d.tokenizer == "byte":
            self.tokenizer = ByteTokenizer()
        else:
            self.tokenizer = BPETokenizer.train_or_load(corpus.train, d.tokenizer_vocab, corpus.fingerprint, cache_dir())
        self.vocab_size = self.tokenizer.vocab_size
        self.fingerprint = f"{corpus.fingerprint}-{self.tokenizer.fingerprint}"
        self.train_ids = token_shard(corpus.train, self.tokenizer, f"{self.fingerprint}-train")
        self.val_ids = token_shard(corpus.val, self.tokenizer, f"{self.fingerprint}-val")
        if len(self.val_ids) <= d.context_len + d.text_len:
            raise ConfigError("data.context_len", f"the validation split has {len(self.val_ids)} tokens, fewer than one example",
                              "use a larger corpus, a larger data.val_fraction or shorter context_len/text_len")

    def _windows(self, ids: np.ndarray, starts: np.ndarray) -> dict:
        T, S = self.d.context_len, self.d.text_len
        rows = ids[starts[:, None] + np.arange(T + S)].astype(np.int64)  # (B, T + S)
        return _tensors(rows[:, :T], rows[:, T:], np.ones((len(starts), S), bool))

    def train_batch(self, seed: int, step: int, B: int) -> dict:
        rng = np.random.default_rng([seed, step])
        span = self.d.context_len + self.d.text_len
        return self._windows(self.train_ids, rng.integers(0, len(self.train_ids) - span, size=B))

    def val_batches(self, B: int) -> list[dict]:
        span = self.d.context_len + self.d.text_len
        starts = np.linspace(0, len(self.val_ids) - span - 1, self.d.val_examples).astype(np.int64)
        return [self._windows(self.val_ids, starts[i:i + B]) | {"task": "text"} for i in range(0, len(starts), B)]


def vocab_size_hint(d: DataConfig) -> int:
    """The vocabulary a source will have, without loading any data (for sizing models up front)."""
    if d.source == "synthetic":
        return layout(d)["vocab_size"]
    return ByteTokenizer.vocab_size if d.tokenizer == "byte" else d.tokenizer_vocab


def make_source(d: DataConfig) -> SyntheticSource | TextSource:
    return SyntheticSource(d) if d.source == "synthetic" else TextSource(d)


def mode_targets(batch: dict, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """What a decoder mode is scored on, and which of its tokens: the text (its loss mask) or the whole context."""
    if MODES[mode].target == "context":
        return batch["context"], torch.ones_like(batch["context"], dtype=torch.bool)
    return batch["text"], batch["loss_mask"]


def compose(batch: dict, composition: dict[str, int], seed: int, step: int, rank: int = 0, world: int = 1) -> dict:
    """A training batch laid out by decoder mode: each mode's rows (drawn by a permutation of the step, so that every
    mode sees every task), this DDP rank's share of them, contiguous in `composition` order. `mode_rows` says how many
    rows each mode has here; `mode_tokens` counts each mode's scored tokens in the whole global batch."""
    order = torch.from_numpy(np.random.default_rng([seed, step, 7]).permutation(len(batch["context"])))
    parts, rows, tokens, start = [], [], [], 0
    for mode, n in composition.items():
        part = {k: batch[k][order[start:start + n]] for k in ("context", "text", "loss_mask")}
        start += n
        tokens.append(max(1.0, float(mode_targets(part, mode)[1].sum())))
        parts.append({k: v[rank::world] for k, v in part.items()})
        rows.append((mode, len(parts[-1]["context"])))
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]} | {"mode_rows": tuple(rows),
                                                                       "mode_tokens": torch.tensor(tokens)}


def step_batch(source, seed: int, step: int, B: int, composition: dict[str, int], rank: int = 0,
               world: int = 1) -> dict:
    """Training step `step`'s batch, laid out by mode (`compose`): what the trial's stream yields, and what a loop
    without Lightning (the benchmarks' bare loop) must train on to do the same work."""
    return compose(source.train_batch(seed, step, B), composition, seed, step, rank, world)


class _StepStream(IterableDataset):
    """Steps `start` to `stop`'s batches, this DDP rank's share of each (the rank is read where the stream is made:
    a loader's worker process is in no process group)."""

    def __init__(self, source, seed: int, B: int, start: int, stop: int, composition: dict[str, int]):
        self.source, self.seed, self.B, self.start, self.stop = source, seed, B, start, stop
        self.composition, self.rank_world = composition, rank_world()

    def __iter__(self) -> Iterator[dict]:
        for step in range(self.start, self.stop):
            # under DDP each rank trains on its share of the same global batch: the trial sees the same data at any world size
            yield step_batch(self.source, self.seed, step, self.B, self.composition, *self.rank_world)


class TrialData(L.LightningDataModule):
    """Training stream from the current step to the budget; its state (the next step) is checkpointed. `gpu`: one
    worker process builds the next batches into pinned memory while the host launches the step's kernels (a step
    that is launch-bound waits on nothing else; the bare loop it is measured against builds no batches at all)."""

    def __init__(self, cfg: TrialConfig, source, total_steps: int, gpu: bool = False):
        super().__init__()
        self.cfg, self.source, self.total_steps, self.gpu = cfg, source, total_steps, gpu
        self.start_step = 0
        self._val = None
        self._unigram: torch.Tensor | None = None

    def train_dataloader(self):
        t = self.cfg.train
        stream = _StepStream(self.source, self.cfg.seed, t.batch_size, self.start_step, self.total_steps, t.composition())
        return DataLoader(stream, batch_size=None, num_workers=int(self.gpu), pin_memory=self.gpu)

    def val_dataloader(self):
        if self._val is None:
            rank, world = rank_world()
            self._val = self.source.val_batches(self.cfg.train.batch_size)[rank::world]  # gathered after the epoch
        return DataLoader(self._val, batch_size=None)

    def unigram_logp(self) -> torch.Tensor:
        """Log-probabilities (V,) of every token as a scored answer in training batches (add-half smoothed): the
        no-context model that needs no decoder, counted on fixed batches, the same for every trial of the data."""
        if self._unigram is None:
            counts = np.full(self.source.vocab_size, 0.5)
            for step in range(UNIGRAM_BATCHES):
                batch = self.source.train_batch(UNIGRAM_SEED, step, self.cfg.train.batch_size)
                counts += np.bincount(batch["text"][batch["loss_mask"]].numpy(), minlength=len(counts))
            self._unigram = torch.from_numpy(np.log(counts / counts.sum())).float()
        return self._unigram

    def state_dict(self) -> dict:
        return {"next_step": self.trainer.global_step if self.trainer else self.start_step}

    def load_state_dict(self, state: dict) -> None:
        self.start_step = int(state["next_step"])
