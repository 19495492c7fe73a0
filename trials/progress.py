"""What a running trial shows of itself: a progress bar in steps and tokens (`lclab train`), or, without a bar
(sweep workers), a line per `log_every` steps in its log and a snapshot handed to a sink (the sweep stores it on
the Optuna trial, where the live display and `lclab trials` read it)."""
from __future__ import annotations

import time
from typing import Callable

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar

MIN_INTERVAL_S = 5.0  # at most one log line and one stored snapshot per this many seconds, besides events


class StepProgressBar(TQDMProgressBar):
    """A trial is one pass over a stream of steps: count steps of the trial (and tokens), not epochs."""

    def __init__(self, tokens_per_step: int):
        super().__init__()
        self.tokens_per_step = tokens_per_step

    @property
    def train_description(self) -> str:
        return "steps"

    def on_train_epoch_start(self, trainer, *_):  # replaces the parent's, which names and counts epochs
        bar = self.train_progress_bar
        bar.reset(total=trainer.max_steps)
        bar.n = bar.initial = trainer.global_step  # a resumed trial starts where its checkpoint left off
        bar.refresh()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        step, bar = trainer.global_step, self.train_progress_bar
        if self._should_update(step, bar.total):
            bar.n = step
            bar.set_postfix(self.get_metrics(trainer, module))
            bar.refresh()

    def get_metrics(self, trainer, module):
        metrics = super().get_metrics(trainer, module)
        metrics.pop("v_num", None)
        metrics["tokens"] = f"{trainer.global_step * self.tokens_per_step / 1e6:.2f}M"
        return metrics


class ProgressLog(L.Callback):
    """One line per `log_every` steps (at most one per MIN_INTERVAL_S), and one at every validation and checkpoint,
    printed to stdout (a sweep worker's log, so `tail -f` shows life) and handed to `sink` as a dict:
    {phase, step, steps, tokens, loss, val (float metrics of the last validation), at}."""

    def __init__(self, phase: str, tokens_per_step: int, log_every: int, sink: Callable[[dict], None] | None = None):
        self.phase, self.tokens_per_step, self.log_every, self.sink = phase, tokens_per_step, max(1, log_every), sink
        self.loss: float | None = None
        self.val: dict = {}
        self._last = 0.0

    def _emit(self, trainer, event: str = "") -> None:
        step = trainer.global_step
        snapshot = {"phase": self.phase, "step": step, "steps": trainer.max_steps, "tokens": step * self.tokens_per_step,
                    "loss": self.loss, "val": self.val, "at": time.time()}
        loss = f" loss {self.loss:.4f}" if self.loss is not None else ""
        print(f"[{self.phase}] step {step}/{trainer.max_steps} tokens {snapshot['tokens']:,}{loss}{event}", flush=True)
        if self.sink is not None:
            self.sink(snapshot)
        self._last = time.monotonic()

    def on_train_start(self, trainer, module):
        self._emit(trainer, " (resumed)" if trainer.global_step else " (started)")

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.global_step % self.log_every == 0 and time.monotonic() - self._last >= MIN_INTERVAL_S:
            self.loss = float(outputs["loss"])  # one host sync per log_every steps, never per step
            self._emit(trainer)

    def on_validation_end(self, trainer, module):
        if trainer.sanity_checking or not module.val_metrics:
            return
        self.val = {k: v for k, v in module.val_metrics.items() if isinstance(v, float)}
        shown = ", ".join(f"{k} {self.val[k]:.4f}" for k in ("val/loss_compressed", "val/recon_acc") if k in self.val)
        self._emit(trainer, f"; validation: {shown}")

    def on_save_checkpoint(self, trainer, module, checkpoint):
        print(f"[{self.phase}] checkpoint saved at step {trainer.global_step}", flush=True)
