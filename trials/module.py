"""The Lightning side of a trial: losses by mode, per-component AdamW, schedules, validation."""
from __future__ import annotations

import math

import lightning as L
import torch

from lclab.models import LCLM, MODES

from .config import TrainConfig, TrialConfig
from .data import mode_targets
from .distributed import gather_lists, rank_world
from .metrics import Floors, example_stats, loss_sum, summarize, unigram_stats


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
        self.shares = cfg.train.shares()
        self.loss_sum = loss_sum  # replaced by its compiled version under train.compile
        self.trains: dict[str, bool] = {}  # whether each component currently trains (staged training)

    # --------------------------------------------------------------------------- training
    def training_losses(self, batch: dict, step: int | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The step's loss and each mode's own. Every mode trains on its rows of the batch (`mode_rows`): the loss is
        the modes' token-mean losses weighted by their shares. Each mode's token sum is divided by its token count
        over the whole global batch (`mode_tokens`), so DDP's average over ranks is exactly one process's loss.
        `step` is the one the curriculum reads: Lightning's global step unless a loop without a trainer counts its own."""
        world, start = rank_world()[1], 0
        skip = self.embedding_skip(self.global_step if step is None else step)
        parts, targets = [], []  # the modes this rank holds rows of: (index into mode_tokens, mode, text, mask)
        for i, (mode, rows) in enumerate(batch["mode_rows"]):
            part = {k: batch[k][start:start + rows] for k in ("context", "text", "loss_mask")}
            start += rows
            if rows == 0:  # this DDP rank holds none of the mode's rows
                continue
            text, mask = mode_targets(part, mode)
            parts.append((part["context"], text, mode))
            targets.append((i, mode, text, mask))
        total, losses = 0.0, {}
        for logits, (i, mode, text, mask) in zip(self.model.forward_modes(parts, skip), targets):  # one pass
            losses[mode] = self.loss_sum(logits, text, mask) * world / batch["mode_tokens"][i]
            total = total + self.shares[mode] * losses[mode]
        return total, losses

    def embedding_skip(self, step: int) -> float:
        """The curriculum's weight on the latents' mean token embeddings at `step` (`train.embedding_skip_frac`):
        1 at the start, 0 from the end of its share on (and always in validation)."""
        span = self.cfg.train.embedding_skip_frac * self.total_steps
        return max(0.0, 1.0 - step / span) if span else 0.0

    def training_step(self, batch, batch_idx):
        loss, losses = self.training_losses(batch)
        self.step_losses = {"train/loss": loss.detach(), **{f"train/loss_{m}": v.detach() for m, v in losses.items()}}
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        """Log the step's losses only where Lightning writes them: each `self.log` costs ~0.6 ms of bookkeeping on
        the host (5 a step were 4% of a tiny CPU step), and a step-level value logged elsewhere is dropped unread.
        This hook runs after the callbacks' (which may stop the trial) and before Lightning's own check; the optimizer
        has stepped, so `global_step` is its `batches_that_stepped + 1`. A progress bar reads its value every step."""
        trainer = self.trainer
        every = trainer.log_every_n_steps
        if self.cfg.progress or (every and (self.global_step % every == 0 or trainer.should_stop)):
            losses = dict(self.step_losses)
            self.log("train/loss", losses.pop("train/loss"), prog_bar=self.cfg.progress)
            self.log_dict(losses)

    def on_train_batch_start(self, batch, batch_idx):
        """Staged training: a component before its stage neither computes nor clips gradients."""
        starts = self.stage_starts()
        for name, part in self.model.components().items():
            trains = self.global_step >= starts[name]
            if self.trains.get(name) != trains:
                part.requires_grad_(trains)
                self.trains[name] = trains

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        """Clip the global norm of the gradients that exist (a frozen stage has none). Lightning's own clipping under
        bf16-mixed refuses a fused optimizer (its check guards fp16's loss scaler, which bf16 does not use), and
        stopped every GPU trial at its first step."""
        if gradient_clip_val:
            torch.nn.utils.clip_grad_norm_([p for p in self.parameters() if p.grad is not None], gradient_clip_val)

    # --------------------------------------------------------------------------- validation
    def on_validation_epoch_start(self):
        self.val_records = []

    def validation_step(self, batch, batch_idx):
        record = {"task": batch["task"]}
        for mode in MODES:
            text, mask = mode_targets(batch, mode)
            stats = example_stats(self.model(batch["context"], text, mode), text, mask)
            record.update({f"{mode}/{k}": v.detach().cpu() for k, v in stats.items()})
        logp = self.trainer.datamodule.unigram_logp().to(batch["text"].device)
        record.update({f"unigram/{k}": v.cpu() for k, v in unigram_stats(logp, batch["text"], batch["loss_mask"]).items()})
        self.val_records.append(record)

    def on_validation_epoch_end(self):
        if self.trainer.sanity_checking:
            return
        self.val_records = gather_lists(self.val_records)  # DDP ranks validated disjoint batches
        if not self.val_records:
            return
        d, synthetic = self.cfg.data, self.cfg.data.source == "synthetic"
        floors = Floors(uniform=math.log(d.n_symbols if synthetic else self.cfg.model.vocab_size),
                        chance_acc=1 / d.n_symbols if synthetic else None,  # every synthetic answer is one symbol
                        none_trained="none" in self.cfg.train.trained_modes())
        self.val_metrics, self.val_step = summarize(self.val_records, floors), self.global_step
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
        # fused: one kernel for all parameters instead of ~18 passes over them
        optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.95), fused=True)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedules)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
