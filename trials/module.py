"""The Lightning side of a trial: losses by mode, per-component AdamW, schedules, validation."""
from __future__ import annotations

import math

import lightning as L
import numpy as np
import torch

from lclab.errors import DivergedError
from lclab.models import LCLM, MODES

from .config import TrainConfig, TrialConfig
from .distributed import gather_lists
from .metrics import example_stats, masked_loss, summarize


class LRSchedule:
    """Multiplier of a group's learning rate at a step: warmup then cosine or WSD, zero before `start`.

    A callable object (not a closure) so that LambdaLR can checkpoint it with weights_only loading.
    """

    def __init__(self, t: TrainConfig, total_steps: int, start: int = 0):
        self.kind, self.total, self.start = t.schedule, total_steps, start
        self.warmup = max(1, round(t.warmup_frac * (total_steps - start)))
        self.decay_frac, self.min_frac = t.decay_frac, t.min_lr_frac

    def __call__(self, step: int) -> float:
        if step < self.start:
            return 0.0
        s, n = step - self.start, max(1, self.total - self.start)
        if s < self.warmup:
            return (s + 1) / self.warmup
        if self.kind == "cosine":
            progress = (s - self.warmup) / max(1, n - self.warmup)
            return self.min_frac + (1 - self.min_frac) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        decay_start = n * (1 - self.decay_frac)  # wsd: flat, then linear decay to min
        if s < decay_start:
            return 1.0
        return 1 - (1 - self.min_frac) * min(1.0, (s - decay_start) / max(1, n - decay_start))


class LCLMTrial(L.LightningModule):
    def __init__(self, cfg: TrialConfig, total_steps: int):
        super().__init__()
        self.cfg, self.total_steps = cfg, total_steps
        self.model = LCLM(cfg.model)
        self.val_records: list[dict] = []
        self.val_metrics: dict = {}
        self.val_step: int | None = None  # global step the metrics belong to

    # --------------------------------------------------------------------------- training
    def mode_for_step(self, step: int) -> str:
        """The decoder mode of a training step: each mode with a share field takes that share, compressed the rest."""
        u, edge = np.random.default_rng([self.cfg.seed, step, 7]).random(), 0.0
        for name, mode in MODES.items():
            if mode.share is not None:
                edge += getattr(self.cfg.train, mode.share)
                if u < edge:
                    return name
        return "compressed"

    @staticmethod
    def targets(batch: dict, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
        if MODES[mode].target == "context":
            return batch["context"], torch.ones_like(batch["context"], dtype=torch.bool)
        return batch["text"], batch["loss_mask"]

    def training_step(self, batch, batch_idx):
        mode = self.mode_for_step(self.global_step)
        text, mask = self.targets(batch, mode)
        loss = masked_loss(self.model(batch["context"], text, mode), text, mask)
        # every DDP rank must agree, or the finite ones would wait for the others' gradients forever
        if not self.trainer.strategy.reduce_boolean_decision(bool(torch.isfinite(loss)), all=True):
            raise DivergedError(f"training loss is {loss.item()} at step {self.global_step} (mode {mode})")
        self.log("train/loss", loss, prog_bar=True)
        self.log(f"train/loss_{mode}", loss)
        return loss

    # --------------------------------------------------------------------------- validation
    def on_validation_epoch_start(self):
        self.val_records = []

    def validation_step(self, batch, batch_idx):
        record = {"task": batch["task"]}
        for mode in MODES:
            text, mask = self.targets(batch, mode)
            stats = example_stats(self.model(batch["context"], text, mode), text, mask)
            record.update({f"{mode}/{k}": v.detach().cpu() for k, v in stats.items()})
        self.val_records.append(record)

    def on_validation_epoch_end(self):
        if self.trainer.sanity_checking:
            return
        self.val_records = gather_lists(self.val_records)  # DDP ranks validated disjoint batches
        if not self.val_records:
            return
        d = self.cfg.data
        chance = 1 / d.n_symbols if d.source == "synthetic" else None  # every synthetic answer is one symbol
        uniform = math.log(d.n_symbols if d.source == "synthetic" else self.cfg.model.vocab_size)
        self.val_metrics, self.val_step = summarize(self.val_records, chance, uniform), self.global_step
        self.log_dict({k: v for k, v in self.val_metrics.items() if isinstance(v, float) and math.isfinite(v)})

    # --------------------------------------------------------------------------- optimisation
    def stage_starts(self) -> dict[str, int]:
        """First step at which each component trains (staged: adapter, then + encoder, then + decoder)."""
        t = self.cfg.train
        if t.stages == "joint":
            return {"encoder": 0, "adapter": 0, "decoder": 0}
        first, second = (round(f * self.total_steps) for f in t.stage_fracs)
        return {"adapter": 0, "encoder": first, "decoder": first + second}

    def configure_optimizers(self):
        t, starts, groups, schedules = self.cfg.train, self.stage_starts(), [], []
        lrs = {"encoder": t.lr_encoder, "adapter": t.lr_adapter, "decoder": t.lr_decoder}
        for name, part in self.model.components().items():
            params = [p for p in part.parameters() if p.requires_grad]
            decay = [p for p in params if p.dim() >= 2]  # matrices decay; norms and biases do not
            other = [p for p in params if p.dim() < 2]
            for ps, wd in ((decay, t.weight_decay), (other, 0.0)):
                if ps:
                    groups.append({"params": ps, "lr": lrs[name], "weight_decay": wd, "name": name})
                    schedules.append(LRSchedule(t, self.total_steps, starts[name]))
        optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.95))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedules)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
