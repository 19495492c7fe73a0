"""Step time of the Lightning trial vs a bare PyTorch loop of the same model, batches, optimizer and
clipping, in one process (target: ratio <= 1.03).

    python benchmarks/trial_overhead.py [--steps 60] [--config configs/trial/tiny.yaml]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

from _common import report
from lclab.trials import LCLMTrial, load_config, run_trial
from lclab.trials.data import make_source
from lclab.trials.metrics import masked_loss
from lclab.trials.run import resolve_config

ROOT = Path(__file__).parents[1]


class StepTimer(L.Callback):
    def __init__(self):
        self.stamps = []

    def on_train_batch_end(self, *args):
        self.stamps.append(time.perf_counter())


def lightning_steps(cfg, steps) -> list[float]:
    timer = StepTimer()
    run_trial(cfg, callbacks=[timer])
    return [b - a for a, b in zip(timer.stamps, timer.stamps[1:])]


def bare_steps(cfg, steps) -> list[float]:
    source = make_source(cfg.data)
    cfg = resolve_config(cfg, source)
    L.seed_everything(cfg.seed, verbose=False)
    module = LCLMTrial(cfg, steps)  # same model, parameter groups and schedule, driven by hand
    opt = module.configure_optimizers()
    optimizer, scheduler = opt["optimizer"], opt["lr_scheduler"]["scheduler"]
    stamps = []
    for step in range(steps):
        batch = source.train_batch(cfg.seed, step, cfg.train.batch_size)
        mode = module.mode_for_step(step)
        text, mask = module.targets(batch, mode)
        loss = masked_loss(module.model(batch["context"], text, mode), text, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.model.parameters(), cfg.train.grad_clip)
        optimizer.step()
        scheduler.step()
        stamps.append(time.perf_counter())
    return [b - a for a, b in zip(stamps, stamps[1:])]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=str(ROOT / "configs" / "trial" / "tiny.yaml"))
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as out:
        cfg = load_config(a.config, [f"train.steps={a.steps}", "progress=false", f"output_dir={out}",
                                     "train.full_context_share=0.1", "train.reconstruction_share=0.1"])
        rows, medians = [], {"lightning": [], "bare": []}
        for r in range(a.repeats):  # interleaved, so drift in machine speed hits both alike
            for name, fn in (("bare", bare_steps), ("lightning", lightning_steps)):
                times = fn(cfg, a.steps)[5:]  # first steps warm up allocators
                medians[name].append(statistics.median(times))
                rows.append([name, r, statistics.median(times) * 1e3, statistics.mean(times) * 1e3])
    ratio = statistics.mean(medians["lightning"]) / statistics.mean(medians["bare"])
    rows.append(["lightning / bare", "", ratio, ""])
    report("trial_overhead", ["loop", "repeat", "median step ms", "mean step ms"], rows,
           {"ratio_median_step": ratio, "target": 1.03})


if __name__ == "__main__":
    main()
