"""Model FLOPs utilisation of the `small` trial on a GPU (skips without one). Target: >= 40% on an H100 in bf16.

MFU = achieved training FLOPs/s (3x the analytic forward FLOPs of the step's mode mix) / the GPU's
dense bf16 peak.

    python benchmarks/mfu.py [--steps 40] [--peak-tflops 989]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

from _common import report
from lclab.trials import load_config, run_trial
from lclab.trials.run import train_flops_per_step

ROOT = Path(__file__).parents[1]
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


class StepTimer(L.Callback):
    def __init__(self):
        self.stamps = []

    def on_train_batch_end(self, *args):
        torch.cuda.synchronize()
        self.stamps.append(time.perf_counter())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--peak-tflops", type=float, default=None)
    a = ap.parse_args()
    if not torch.cuda.is_available():
        report("mfu", ["status"], [["skipped: no CUDA GPU"]], {"skipped": "no CUDA GPU"})
        return
    name = torch.cuda.get_device_name()
    peak = a.peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    if peak is None:
        raise SystemExit(f"unknown peak for {name}: pass --peak-tflops")
    with tempfile.TemporaryDirectory() as out:
        cfg = load_config(ROOT / "configs/trial/small.yaml",
                          [f"output_dir={out}", "progress=false", "train.budget_tokens=null",
                           f"train.steps={a.steps}", "train.val_every=0", "data.val_examples=16"])
        timer = StepTimer()
        result = run_trial(cfg, callbacks=[timer])
    steps_timed = len(timer.stamps) - 10
    seconds = timer.stamps[-1] - timer.stamps[9]
    achieved = train_flops_per_step(result.module.cfg) * steps_timed / seconds  # as FLOP budgets count them
    mfu = achieved / (peak * 1e12)
    report("mfu", ["gpu", "params", "steps/s", "TFLOP/s", "MFU", "target"],
           [[name, result.metrics["params/total"], steps_timed / seconds, achieved / 1e12, mfu, 0.40]],
           {"mfu": mfu, "attention": result.module.cfg.model.attention})


if __name__ == "__main__":
    main()
