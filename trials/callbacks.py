"""Lightning callbacks a sweep adds to a trial."""
from __future__ import annotations

import math

import lightning as L
import optuna


class PruningReporter(L.Callback):
    """Reports the objective to Optuna at every validation (keyed by tokens seen) and stops pruned trials.
    Under DDP only rank 0 holds the trial (the others pass None) and its decision reaches every rank."""

    def __init__(self, trial: optuna.Trial | None, metric: str, tokens_per_step: int):
        self.trial, self.metric, self.tokens_per_step = trial, metric, tokens_per_step  # Optuna knows the direction

    def on_validation_end(self, trainer, module):
        if trainer.sanity_checking:
            return
        verdict = None
        value = module.val_metrics.get(self.metric)
        if self.trial is not None and value is not None and math.isfinite(value):
            tokens = trainer.global_step * self.tokens_per_step
            self.trial.report(value, tokens)
            if self.trial.should_prune():
                self.trial.set_user_attr("pruned_at_tokens", tokens)
                verdict = f"pruned at {tokens} tokens ({self.metric} = {value:.4f})"
        verdict = trainer.strategy.broadcast(verdict)  # every DDP rank stops at the same step
        if verdict is not None:
            raise optuna.TrialPruned(verdict)
