"""Lightning callbacks a sweep adds to a trial."""
from __future__ import annotations

from typing import Callable

import lightning as L
import optuna

# the sweep's judge: given the validation metrics and the tokens seen, a reason to stop the trial, or None
Judge = Callable[[dict, int], "str | None"]


class PruningReporter(L.Callback):
    """At every validation, asks the sweep's judge (keyed by tokens seen) whether to stop the trial, and stops it.
    Under DDP only rank 0 holds the judge (the others pass None) and its decision reaches every rank."""

    def __init__(self, judge: Judge | None, tokens_per_step: int):
        self.judge, self.tokens_per_step = judge, tokens_per_step

    def on_validation_end(self, trainer, module):
        if trainer.sanity_checking:
            return
        verdict = self.judge(module.val_metrics, trainer.global_step * self.tokens_per_step) if self.judge else None
        verdict = trainer.strategy.broadcast(verdict)  # every DDP rank stops at the same step
        if verdict is not None:
            raise optuna.TrialPruned(verdict)
