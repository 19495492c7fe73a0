"""What a trial costs beyond its training steps, on CPU, in one run:

  lightning / bare   step time of the Lightning trial vs a bare PyTorch loop of the same module, batches, optimizer
                     and clipping (target <= 1.03)
  whole / steps      the whole `run_trial` call (setup, validation with its baselines, checkpoints, metrics) vs the
                     sum of its training steps (target <= 1.15; the warm decoder is cached beforehand)
  new / baseline     with `--baseline REV`: the same trial on this checkout and on commit REV (installed apart), run
                     alternately in fresh processes, so that machine drift hits both (target: not slower, <= 1.0);
                     per step, and per training FLOP (counted by torch's FlopCounterMode in a separate run of each),
                     since the model may have changed between them

    python benchmarks/trial_overhead.py [--steps 400] [--repeats 2] [--config configs/trial/tiny.yaml] [--baseline REV]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

from _common import report
from lclab.trials import load_config, run_trial
from mfu import BareTrial
from lclab.trials.data import compose, make_source
from lclab.trials.run import resolve_config

ROOT = Path(__file__).parents[1]

# run in a fresh process against whichever lclab is importable there: this checkout or the baseline's install
TIMED_TRIAL = """
import json, sys, time, lightning as L
from torch.utils.flop_counter import FlopCounterMode
from lclab.trials import load_config, run_trial
class Steps(L.Callback):
    def __init__(self): self.spans = []
    def on_train_batch_start(self, *a): self.t = time.perf_counter()
    def on_train_batch_end(self, *a): self.spans.append(time.perf_counter() - self.t)
class Flops(L.Callback):  # a separate run: counting slows every op it sees
    def __init__(self): self.total = 0
    def on_train_batch_start(self, *a): self.mode = FlopCounterMode(display=False); self.mode.__enter__()
    def on_train_batch_end(self, *a): self.mode.__exit__(None, None, None); self.total += self.mode.get_total_flops()
count = sys.argv[1] == "flops"
probe = Flops() if count else Steps()
cfg = load_config(sys.argv[2], sys.argv[3:])
started = time.perf_counter()
run_trial(cfg, callbacks=[probe])
print(json.dumps({"flops_per_step": probe.total / cfg.train.steps} if count else
                 {"whole_s": time.perf_counter() - started, "steps_s": sum(probe.spans), "step_s": probe.spans}))
"""


class StepSpans(L.Callback):
    def __init__(self):
        self.spans, self.stamps = [], []

    def on_train_batch_start(self, *args):
        self.started = time.perf_counter()

    def on_train_batch_end(self, *args):
        now = time.perf_counter()
        self.spans.append(now - self.started)
        self.stamps.append(now)


def lightning_run(cfg) -> dict:
    spans = StepSpans()
    started = time.perf_counter()
    run_trial(cfg, callbacks=[spans])
    whole = time.perf_counter() - started
    return {"whole_s": whole, "steps_s": sum(spans.spans),
            "step_s": [b - a for a, b in zip(spans.stamps, spans.stamps[1:])]}


def bare_steps(cfg, steps) -> list[float]:
    cfg = resolve_config(cfg, make_source(cfg.data))
    bare = BareTrial(cfg, torch.device("cpu"), compile_=False, total_steps=steps)  # same model, parameter groups and schedule, by hand
    stamps = []
    for step in range(steps):  # each batch made in the loop, as the trial's data stream makes it
        bare.step(compose(bare.source.train_batch(cfg.seed, step, cfg.train.batch_size), cfg.train.composition(),
                          cfg.seed, step))
        stamps.append(time.perf_counter())
    return [b - a for a, b in zip(stamps, stamps[1:])]


def install(rev: str, where: Path) -> Path:
    """Commit REV's lclab, installed (not editable) under WHERE/site; its configs under WHERE/src."""
    subprocess.run(["git", "worktree", "add", "--detach", "-f", str(where / "src"), rev], cwd=ROOT, check=True,
                   capture_output=True)
    # built in pip's isolated environment, with the setuptools the commit's pyproject asks for: a fresh venv's own
    # (65 on Python 3.11) cannot build it
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(where / "site"),
                          str(where / "src")], capture_output=True, text=True)
    if pip.returncode:
        raise SystemExit(f"--baseline {rev}: pip could not install that commit's lclab:\n{pip.stderr[-2000:]}")
    return where


def timed_trial(config: Path, overrides: list[str], site: Path | None, cwd: Path, probe: str = "time") -> dict:
    """A trial in a fresh process: its step times (probe "time"), or its training FLOPs per step ("flops")."""
    # outside the repository (cwd), so that PYTHONPATH's install, not this checkout, provides lclab
    env = {**os.environ, **({"PYTHONPATH": str(site)} if site else {})}
    out = subprocess.run([sys.executable, "-c", TIMED_TRIAL, probe, str(config), *overrides], env=env, cwd=cwd,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=str(ROOT / "configs" / "trial" / "tiny.yaml"))
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--baseline", default=None, help="a commit to compare this checkout against")
    a = ap.parse_args()
    rows, extra = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ.setdefault("LCLAB_CACHE", str(tmp / "cache"))
        overrides = [f"train.steps={a.steps}", "progress=false", f"output_dir={tmp / 'runs'}",
                     "train.full_context_share=0.1", "train.reconstruction_share=0.1"]
        cfg = load_config(a.config, overrides)
        run_trial(load_config(a.config, [*overrides, "train.steps=1"]))  # the warm decoder, cached once
        medians = {"lightning": [], "bare": []}
        for r in range(a.repeats):  # interleaved, so drift in machine speed hits both alike
            times = bare_steps(cfg, a.steps)[5:]  # the first steps warm up allocators
            medians["bare"].append(statistics.median(times))
            rows.append(["bare loop", r, statistics.median(times) * 1e3, ""])
            run = lightning_run(cfg)
            medians["lightning"].append(statistics.median(run["step_s"][5:]))
            rows.append(["lightning trial", r, medians["lightning"][-1] * 1e3, run["whole_s"] / run["steps_s"]])
            extra.setdefault("whole_over_steps", []).append(run["whole_s"] / run["steps_s"])
        ratio = statistics.mean(medians["lightning"]) / statistics.mean(medians["bare"])
        rows.append(["lightning / bare", "", ratio, ""])
        extra |= {"ratio_median_step": ratio, "target": 1.03, "target_whole_over_steps": 1.15}
        if a.baseline:
            base = install(a.baseline, tmp / "baseline")
            config = Path(a.config).resolve()
            base_config = base / "src" / config.relative_to(ROOT)
            new, old = [], []
            for c, site in ((config, None), (base_config, base / "site")):  # each code's warm decoder, cached once
                timed_trial(c, [*overrides, "train.steps=1"], site, tmp)
            for r in range(a.repeats):
                new.append(timed_trial(config, overrides, None, tmp))
                old.append(timed_trial(base_config, overrides, base / "site", tmp))
                for label, run in (("this checkout", new[-1]), (f"baseline {a.baseline}", old[-1])):
                    rows.append([label, r, statistics.median(run["step_s"][5:]) * 1e3, run["whole_s"] / run["steps_s"]])
            step_ratio = statistics.mean(statistics.median(x["step_s"][5:]) for x in new) / \
                statistics.mean(statistics.median(x["step_s"][5:]) for x in old)
            # a baseline that draws one mode per step has a cheap median step (compressed) and costly rare ones (full,
            # reconstruct): the mean over the steps is what both pay for the same mix
            mean_ratio = statistics.mean(x["steps_s"] for x in new) / statistics.mean(x["steps_s"] for x in old)
            whole_ratio = statistics.mean(x["whole_s"] for x in new) / statistics.mean(x["whole_s"] for x in old)
            # the model itself may have changed (hidden sizes rounded up to tiles): time per training FLOP compares
            # the code paths at equal work
            flops = {label: timed_trial(c, overrides, site, tmp, "flops")["flops_per_step"]
                     for label, c, site in (("new", config, None), ("old", base_config, base / "site"))}
            flop_ratio = flops["new"] / flops["old"]
            rows.append(["new / baseline (median step)", "", step_ratio, ""])
            rows.append(["new / baseline (mean step)", "", mean_ratio, ""])
            rows.append(["new / baseline (whole trial)", "", whole_ratio, ""])
            rows.append(["new / baseline (training FLOPs per step)", "", flop_ratio, ""])
            rows.append(["new / baseline (mean step time per FLOP)", "", mean_ratio / flop_ratio, ""])
            extra |= {"baseline": a.baseline, "new_over_baseline_step": step_ratio,
                      "new_over_baseline_mean_step": mean_ratio, "new_over_baseline_whole": whole_ratio,
                      "flops_per_step": flops, "new_over_baseline_flops": flop_ratio,
                      "new_over_baseline_time_per_flop": mean_ratio / flop_ratio}
            subprocess.run(["git", "worktree", "remove", "--force", str(base / "src")], cwd=ROOT, capture_output=True)
    report("trial_overhead", ["loop", "repeat", "median step ms", "whole trial / its steps"], rows, extra)


if __name__ == "__main__":
    main()
