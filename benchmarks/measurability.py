"""Can a CPU-sized trial rank designs? Trains the tiny config per task x design x seed and reports, per task and
axis, each level's compressed-context accuracy (mean ± sd over the seeds that learned), the seeds that learned out
of those run, and how far the axis's two levels separate in seed-sds (the bar: beyond 3).

    python benchmarks/measurability.py [--tasks reconstruction kv_offset] [--axes ratio window] [--seeds 10]
        [--threads 0] [--workers 1] [--set key=value ...] [--name measurability] [--reuse results/OLD.json ...]

Threads default to torch's own (what a sweep uses); `--threads 1 --workers 2` runs two trials at a time instead.
A design shared by several axes (every axis's first level is the tiny config) runs once per task and seed.
`--reuse` takes runs of the same task, design, seed, threads and overrides from earlier results instead of training
them again, only when nothing a trial runs (models, trials, lclab, configs) differs in this checkout from the commit
that made them; each reused run names its file and commit.
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from _common import report

CONFIG = Path(__file__).parents[1] / "configs" / "trial" / "tiny.yaml"
BASE = "tiny"  # the first level of every axis: the config as it is
# each axis compares the tiny config with one other level of one design choice
AXES = {
    "ratio": "model.ratio=16",
    "ratio_2": "model.ratio=2",
    "positions": "model.latent_positions=sequential",
    "pooling_max": "model.pooling=max",
    "pooling_concat": "model.pooling=concat",
    "pooling_memory": "model.pooling=memory",
    "pooling_attention": "model.pooling=attention",
    "pooling_last": "model.pooling=last",
    "adapter_attn_mlp": "model.adapter.kind=attn_mlp",
    "adapter_mlp_attn": "model.adapter.kind=mlp_attn",
    "window": "model.encoder.window=4",
    "overlap": "model.encoder.overlap=8",
    "mask": "model.encoder.mask=causal",
}


def tiny_config(overrides: list[str], seed: int, threads: int, out: str):
    """The tiny config with `overrides`, as a benchmark trains it: this seed and thread count, no progress bar."""
    from lclab.trials import load_config

    return load_config(CONFIG, [*overrides, f"seed={seed}", "progress=false", f"train.threads={threads}",
                                f"output_dir={out}"])


def run_one(args: tuple) -> dict:
    task, design, seed, overrides, threads, out = args
    from lclab.trials import run_trial

    m = run_trial(tiny_config([f"data.tasks=[{task}]", *overrides], seed, threads, out)).metrics
    return {"task": task, "design": design, "seed": seed, "wall_s": m["sys/wall_s"], "learned": bool(m["val/learned"]),
            "acc": m[f"val/{task}/acc"], "acc_full": m[f"val/{task}/acc_full"], "acc_none": m[f"val/{task}/acc_none"],
            "loss_compressed": m["val/loss_compressed"], "loss_none": m["val/loss_none"], "threads": threads}


TRIAL_CODE = ["models", "trials", "lclab", "configs"]


def reusable(paths: list[str], threads: int, overrides: list[str]) -> dict[tuple, dict]:
    """(task, design, seed) -> an earlier run of it, from results made by the trial code of this checkout."""
    runs = {}
    for path in paths:
        old = json.loads(Path(path).read_text())
        commit = old["machine"]["commit"]
        changed = subprocess.run(["git", "diff", "--quiet", commit, "--", *TRIAL_CODE],
                                 cwd=Path(__file__).parents[1]).returncode
        if changed or old.get("threads") != threads or old.get("overrides", []) != overrides:
            raise SystemExit(f"--reuse {path}: its runs were made at {commit} with threads {old.get('threads')} and "
                             f"overrides {old.get('overrides')}; they cannot stand for runs of this checkout with threads "
                             f"{threads} and overrides {overrides} (trial code changed: {bool(changed)}). "
                             "Drop --reuse, or reuse results made by this code with these settings.")
        for r in old["runs"]:
            runs[r["task"], r["design"], r["seed"]] = {**r, "reused_from": f"{Path(path).name}@{commit}"}
    return runs


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return (statistics.mean(values) if values else float("nan"),
            statistics.stdev(values) if len(values) > 1 else float("nan"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", nargs="*", default=["reconstruction"])
    ap.add_argument("--axes", nargs="*", default=list(AXES), choices=list(AXES))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads per trial; 0 = torch's default, as in a sweep")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--name", default="measurability", help="results file: benchmarks/results/NAME.json")
    ap.add_argument("--out", default="/tmp/lclab-measurability")
    ap.add_argument("--reuse", nargs="*", default=[], help="earlier results JSON whose runs stand in for the same runs")
    a = ap.parse_args()
    designs = {BASE: [], **{AXES[axis]: [AXES[axis]] for axis in a.axes}}
    seeds = range(a.first_seed, a.first_seed + a.seeds)
    old = reusable(a.reuse, a.threads, a.overrides)
    jobs = [(t, d, s, [*o, *a.overrides], a.threads, a.out)
            for t, (d, o), s in itertools.product(a.tasks, designs.items(), seeds) if (t, d, s) not in old]
    with ProcessPoolExecutor(a.workers) as pool:
        results = list(pool.map(run_one, jobs))
    results += [old[t, d, s] for t, d, s in itertools.product(a.tasks, designs, seeds) if (t, d, s) in old]

    def runs(task, design):
        return [r for r in results if r["task"] == task and r["design"] == design]

    rows = []
    for task, design in itertools.product(a.tasks, designs):
        every = runs(task, design)
        learned = [r for r in every if r["learned"]]
        acc, sd = _mean_sd([r["acc"] for r in learned])
        rows.append([task, design, f"{len(learned)}/{len(every)}", f"{acc:.3f} ± {sd:.3f}",
                     ", ".join(f"{r['acc']:.3f}" + ("" if r["learned"] else "✗") for r in every),
                     f"{statistics.mean(r['acc_full'] for r in every):.3f}",
                     f"{statistics.mean(r['loss_none'] for r in every):.3f}",
                     round(statistics.mean(r["wall_s"] for r in every))])
    columns = ["task", "design", "learned", "acc (learned seeds)", "every seed (✗ did not learn)", "acc raw context",
               "loss no context", "wall_s"]
    report(a.name, columns, rows, {"runs": results, "threads": a.threads, "overrides": a.overrides,
                                   "reused": sorted({r["reused_from"] for r in results if "reused_from" in r})})
    sep_rows = []
    for task, axis in itertools.product(a.tasks, a.axes):
        levels = [runs(task, d) for d in (BASE, AXES[axis])]
        (m1, s1), (m2, s2) = (_mean_sd([r["acc"] for r in level if r["learned"]]) for level in levels)
        sd = max(s1, s2)
        # seeds learned per level beside the separation: a level that never learned has no mean (its nan)
        learned = " vs ".join(f"{sum(r['learned'] for r in level)}/{len(level)}" for level in levels)
        sep_rows.append([task, axis, AXES[axis], learned, m2 - m1, sd, abs(m1 - m2) / sd if sd > 0 else float("nan"),
                         abs(m1 - m2) > 3 * sd])
    report(f"{a.name}_separation", ["task", "axis", "level against tiny", "learned (tiny vs level)", "Δ acc",
                                    "max seed sd", "|Δ| / sd", "beyond 3 sd"], sep_rows)


if __name__ == "__main__":
    main()
