"""Can a CPU-sized trial rank designs? Trains the tiny config per design x seed and reports, per task,
compressed and raw-context accuracy (mean ± std over seeds) and how far designs separate in seed-stds.

    python benchmarks/measurability.py [--seeds 3] [--workers 2] [--set key=value ...]
"""
from __future__ import annotations

import argparse
import itertools
import statistics
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from _common import report

CONFIG = Path(__file__).parents[1] / "configs" / "trial" / "tiny.yaml"
# each axis compares two levels of one design choice around the tiny config
AXES = {
    "ratio": ("model.ratio=4", "model.ratio=16"),
    "positions": ("model.latent_positions=aligned", "model.latent_positions=sequential"),
    "pooling": ("model.pooling=mean", "model.pooling=max"),
    "pooling_concat": ("model.pooling=mean", "model.pooling=concat"),
    "window": ("model.encoder.window=16", "model.encoder.window=4"),
}


def run_one(args: tuple[str, int, list[str], str]) -> dict:
    design, seed, overrides, out = args
    from lclab.trials import load_config, run_trial

    cfg = load_config(CONFIG, [*overrides, f"seed={seed}", "progress=false", "train.threads=1", f"output_dir={out}"])
    m = run_trial(cfg).metrics
    return {"design": design, "seed": seed, "wall_s": m["sys/wall_s"],
            **{k.removeprefix("val/"): v for k, v in m.items() if k.count("/") == 2 and "/acc" in k}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--axes", nargs="*", default=list(AXES))
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--out", default="/tmp/lclab-measurability")
    a = ap.parse_args()
    designs = {level: [level, *a.overrides] for axis in a.axes for level in AXES[axis]}  # shared levels run once
    jobs = [(d, s, o, a.out) for (d, o), s in itertools.product(designs.items(), range(a.seeds))]
    with ProcessPoolExecutor(a.workers) as pool:
        results = list(pool.map(run_one, jobs))
    metrics = sorted(k for k in results[0] if k not in ("design", "seed", "wall_s"))
    summary = {}
    rows = []
    for d in designs:
        runs = [r for r in results if r["design"] == d]
        summary[d] = {k: (statistics.mean(r[k] for r in runs), statistics.stdev(r[k] for r in runs)) for k in metrics}
        rows.append([d, f"{statistics.mean(r['wall_s'] for r in runs):.0f}"]
                    + [f"{summary[d][k][0]:.3f} ± {summary[d][k][1]:.3f}" for k in metrics])
    report("measurability", ["design", "wall_s", *metrics], rows, {"runs": results})
    sep_rows = []
    for axis in a.axes:
        lo, hi = AXES[axis]
        for k in metrics:
            (m1, s1), (m2, s2) = summary[lo][k], summary[hi][k]
            sep_rows.append([axis, k, abs(m1 - m2), abs(m1 - m2) / max(s1, s2, 1e-9)])
    report("measurability_separation", ["axis", "metric", "|delta|", "delta / max seed std"], sep_rows)


if __name__ == "__main__":
    main()
