"""Lightning callbacks a sweep adds to a trial."""
from __future__ import annotations

from typing import Callable

import lightning as L
import optuna
import torch

from lclab.errors import DivergedError

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


class DivergenceGuard(L.Callback):
    """Fails the trial once its training loss is not finite, without a host sync per step: every step folds its loss
    into device-side state, read every `every` steps, before each checkpoint and at the end, so a divergence fails
    the trial within `every` steps, with the step and loss where it began (Lightning runs checkpoints after this)."""

    def __init__(self, every: int, checkpoint_every: int):
        self.every, self.checkpoint_every = every, checkpoint_every
        self.state: torch.Tensor | None = None  # [steps seen, first non-finite step (-1: none), its loss]

    def on_train_start(self, trainer, module):
        self.start = trainer.global_step  # a resumed run counts its steps from here
        self.state = torch.tensor([0.0, -1.0, 0.0], device=module.device)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        loss = outputs["loss"].detach().float()
        seen, first, _ = self.state.unbind()
        new = ~torch.isfinite(loss) & (first < 0)
        self.state = torch.where(new, torch.stack([seen + 1, seen, loss]), torch.stack([seen + 1, first, self.state[2]]))
        step = trainer.global_step
        if step % self.every and step % self.checkpoint_every and step < trainer.max_steps:
            return
        # every DDP rank must stop together, or the finite ones would wait for the others' gradients forever
        if trainer.strategy.reduce_boolean_decision(bool(self.state[1] >= 0), all=False):
            _, first, value = self.state.tolist()
            where = f"at step {self.start + int(first)}" if first >= 0 else "on another DDP rank"
            raise DivergedError(f"training loss is {value if first >= 0 else 'nan'} {where} "
                                f"(found at step {step}: checked every {self.every} steps)")
