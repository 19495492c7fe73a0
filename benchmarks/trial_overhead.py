"""What a trial costs beyond its training steps, on CPU, with an interval for every ratio:

  lightning / bare   step time of the Lightning trial vs a bare PyTorch loop of the same module, batches, optimizer
                     and clipping (target <= 1.03). Both run in one process, in alternating blocks of steps (the bare
                     loop's inside a callback of the trial), so each block pair sees the same machine: a shared
                     2-core VM drifts by 5-10% between runs a minute apart, more than the effect measured
  whole / steps      the whole `run_trial` call (setup, validation with its baselines, checkpoints, metrics; the bare
                     blocks taken out) vs the sum of its training steps (target <= 1.15; the warm decoder is cached
                     beforehand)
  new / baseline     with `--baseline REV`: the same trial on this checkout and on commit REV (installed apart), in
                     fresh processes whose order alternates (target: not slower, <= 1.0); per step, and per training
                     FLOP (counted by torch's FlopCounterMode in a separate run of each), since the model may have
                     changed between them. `--new-set k=v` turns off, on this checkout's side, what the baseline lacks
  compiled / eager   with `--compile`: the trial with `train.compile=true` against eager, each in a fresh process: with
                     an empty inductor cache and again with the cache it left (as a sweep's later trials find it)

Ratios are geometric means over pairs with a 95% Student-t interval.

    python benchmarks/trial_overhead.py [--steps 400] [--repeats 2] [--block 10] [--config configs/trial/tiny.yaml]
                                        [--baseline REV [--new-set k=v ...]] [--compile] [--name trial_overhead]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from scipy import stats

from _common import report
from lclab.trials import load_config, run_trial
from mfu import BareTrial
from lclab.trials.data import make_source, step_batch
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
metrics = run_trial(cfg, callbacks=[probe]).metrics
print(json.dumps({"flops_per_step": probe.total / cfg.train.steps} if count else
                 {"whole_s": time.perf_counter() - started, "steps_s": sum(probe.spans), "step_s": probe.spans,
                  "val_loss": metrics["val/loss_compressed"]}))
"""


def ratio_interval(pairs: list[tuple[float, float]]) -> tuple[float, float, float]:
    """Geometric mean of a/b over (a, b) pairs, with a 95% Student-t interval (nan with one pair)."""
    logs = [math.log(a / b) for a, b in pairs]
    mean = statistics.mean(logs)
    if len(logs) < 2:
        return math.exp(mean), math.nan, math.nan
    half = stats.t.ppf(0.975, len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def ratio_row(label: str, pairs: list[tuple[float, float]], target: float | str = "") -> list:
    r, lo, hi = ratio_interval(pairs)
    return [label, len(pairs), r, f"[{lo:.3f}, {hi:.3f}]", target]


class Interleaved(L.Callback):
    """After every `block` steps of the trial, `block` steps of a bare loop (the same module, optimizer, clipping
    and schedule, by hand: `mfu.BareTrial`), each on its step's batch made as the trial's data stream makes it.
    A trial interval runs from the end of one step's hook to the next: data, hooks, logging, the step itself."""

    def __init__(self, cfg, block: int):
        cfg = resolve_config(cfg, make_source(cfg.data))
        self.cfg, self.block, self.composition = cfg, block, cfg.train.composition()
        self.bare = BareTrial(cfg, torch.device("cpu"), compile_=False, total_steps=cfg.train.steps)
        self.trial_s: list[list[float]] = [[]]  # per block, the trial's step intervals
        self.bare_s: list[list[float]] = []  # per block, the bare loop's
        self.spans: list[float] = []  # batch start to batch end: what `whole / steps` divides by
        self.last = None

    def on_train_batch_start(self, trainer, *args):
        self.started = time.perf_counter()

    def on_train_batch_end(self, trainer, *args):
        now = time.perf_counter()
        self.spans.append(now - self.started)
        if self.last is not None:
            self.trial_s[-1].append(now - self.last)
        if trainer.global_step % self.block == 0:
            self.bare_s.append([])
            for _ in range(self.block):
                step, t = self.bare.steps_done, time.perf_counter()
                self.bare.step(step_batch(self.bare.source, self.cfg.seed, step, self.cfg.train.batch_size,
                                          self.composition))
                self.bare_s[-1].append(time.perf_counter() - t)
            self.trial_s.append([])
            now = time.perf_counter()
        self.last = now

    def pairs(self) -> list[tuple[float, float]]:
        """(trial, bare) median step per block pair, each bare block against the trial's block before it; the first
        pair warms up allocators."""
        return [(statistics.median(t), statistics.median(b)) for t, b in zip(self.trial_s, self.bare_s)][1:]


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


def compare_processes(runs: dict[str, tuple[Path, list[str], Path | None]], repeats: int, cwd: Path) -> dict:
    """Each labelled trial (config, overrides, site) in fresh processes, `repeats` times, the order alternating."""
    out = {label: [] for label in runs}
    for r in range(repeats):
        for label in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
            out[label].append(timed_trial(*runs[label], cwd))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=str(ROOT / "configs" / "trial" / "tiny.yaml"))
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--block", type=int, default=10, help="steps per block of the lightning / bare interleaving")
    ap.add_argument("--baseline", default=None, help="a commit to compare this checkout against")
    ap.add_argument("--new-set", dest="new_set", action="append", default=[],
                    help="k=v overrides for this checkout's side only (turn off what the baseline lacks)")
    ap.add_argument("--compile", action="store_true", help="also time train.compile=true against eager")
    ap.add_argument("--name", default="trial_overhead", help="results file name")
    a = ap.parse_args()
    columns = ["ratio", "pairs", "geometric mean", "95% interval", "target"]
    rows, extra = [], {"steps": a.steps, "repeats": a.repeats, "block": a.block}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ.setdefault("LCLAB_CACHE", str(tmp / "cache"))
        overrides = [f"train.steps={a.steps}", "progress=false", f"output_dir={tmp / 'runs'}",
                     "train.full_context_share=0.1", "train.reconstruction_share=0.1"]
        cfg = load_config(a.config, overrides)
        run_trial(load_config(a.config, [*overrides, "train.steps=1"]))  # the warm decoder, cached once
        pairs, whole = [], []
        for _ in range(a.repeats):
            probe = Interleaved(cfg, a.block)
            started = time.perf_counter()
            run_trial(cfg, callbacks=[probe])
            bare_total = sum(map(sum, probe.bare_s))
            pairs += probe.pairs()
            whole.append((time.perf_counter() - started - bare_total, sum(probe.spans)))
        rows.append(ratio_row("lightning / bare (median step)", pairs, 1.03))
        rows.append(ratio_row("whole trial / its steps", whole, 1.15))
        extra |= {"lightning_over_bare": ratio_interval(pairs), "whole_over_steps": ratio_interval(whole),
                  "pairs": {"lightning_over_bare": pairs, "whole_over_steps": whole}}
        config = Path(a.config).resolve()
        if a.baseline:
            base = install(a.baseline, tmp / "baseline")
            base_config = base / "src" / config.relative_to(ROOT)
            sides = {"new": (config, [*overrides, *a.new_set], None), "old": (base_config, overrides, base / "site")}
            for c, o, site in sides.values():  # each code's warm decoder, cached once
                timed_trial(c, [*o, "train.steps=1"], site, tmp)
            runs = compare_processes(sides, a.repeats, tmp)
            # a baseline that draws one mode per step has a cheap median step (compressed) and costly rare ones (full,
            # reconstruct): the mean over the steps is what both pay for the same mix
            step_pairs = list(zip((x["steps_s"] for x in runs["new"]), (x["steps_s"] for x in runs["old"])))
            whole_pairs = list(zip((x["whole_s"] for x in runs["new"]), (x["whole_s"] for x in runs["old"])))
            # the model itself may have changed (hidden sizes rounded up to tiles): time per training FLOP compares
            # the code paths at equal work
            flops = {k: timed_trial(c, o, site, tmp, "flops")["flops_per_step"] for k, (c, o, site) in sides.items()}
            flop_ratio = flops["new"] / flops["old"]
            per_flop = [(n / flop_ratio, o) for n, o in step_pairs]
            rows.append(ratio_row(f"new / {a.baseline} (mean step)", step_pairs))
            rows.append(ratio_row(f"new / {a.baseline} (whole trial)", whole_pairs))
            rows.append([f"new / {a.baseline} (training FLOPs per step)", 1, flop_ratio, "", ""])
            rows.append(ratio_row(f"new / {a.baseline} (mean step time per FLOP)", per_flop, 1.0))
            extra |= {"baseline": a.baseline, "new_set": a.new_set, "flops_per_step": flops,
                      "new_over_baseline_mean_step": ratio_interval(step_pairs),
                      "new_over_baseline_whole": ratio_interval(whole_pairs), "new_over_baseline_flops": flop_ratio,
                      "new_over_baseline_time_per_flop": ratio_interval(per_flop),
                      "runs": {k: [{key: x[key] for key in ("whole_s", "steps_s")} for x in v] for k, v in runs.items()}}
            subprocess.run(["git", "worktree", "remove", "--force", str(base / "src")], cwd=ROOT, capture_output=True)
        if a.compile:
            # the inductor cache starts empty, as on a new machine; the second compiled run finds what the first left
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(tmp / "inductor")
            eager = timed_trial(config, overrides, None, tmp)
            fresh = timed_trial(config, [*overrides, "train.compile=true"], None, tmp)
            warm = timed_trial(config, [*overrides, "train.compile=true"], None, tmp)
            median = {k: statistics.median(x["step_s"][5:])
                      for k, x in (("eager", eager), ("fresh", fresh), ("warm", warm))}
            compiled_step = statistics.mean([median["fresh"], median["warm"]]) / median["eager"]
            rows.append(["compiled / eager (median step)", 2, compiled_step, "", ""])
            for label, run in (("empty", fresh), ("warm", warm)):
                rows.append([f"compiled / eager (whole trial, {label} cache)", 1, run["whole_s"] / eager["whole_s"],
                             "", "<= 1: compile pays"])
            extra |= {"compile": {"eager_whole_s": eager["whole_s"], "compiled_whole_s_empty_cache": fresh["whole_s"],
                                  "compiled_whole_s_warm_cache": warm["whole_s"], "median_step_s": median,
                                  "val_loss": {"eager": eager["val_loss"], "compiled_empty_cache": fresh["val_loss"],
                                               "compiled_warm_cache": warm["val_loss"]}}}
    report(a.name, columns, rows, extra)


if __name__ == "__main__":
    main()
