"""Operators one training step dispatches (forward, backward, clipping, optimizer), counted on CPU.

On a GPU every operator that is not a view is at least one kernel launch when eager, and compiled blocks launch in
proportion. The `small` trial's mix on an H100 is launch-bound (GPU idle 52% of its step, mfu.json), so what a step
launches is what it costs there: these counts say what a change does to that cost without a GPU. They are exact and
the same on every machine, so one run of each side suffices. Sequence lengths change no count (windows, modes and
layers are batched), so the context and text are shortened by default: small's full lengths need ~30 GB on a CPU.

    python benchmarks/step_ops.py [--config configs/trial/small.yaml] [--set k=v ...] [--baseline REV] [--name step_ops]

`--baseline REV` counts commit REV's step too (installed apart, as trial_overhead does) on the same config.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import report
from trial_overhead import install

ROOT = Path(__file__).parents[1]

# run in a fresh process against whichever lclab is importable there, with that side's own bare loop (mfu.BareTrial)
COUNT = """
import json, sys
sys.path.insert(0, sys.argv[1])
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from mfu import BareTrial
from lclab.trials import load_config
from lclab.trials.data import make_source
from lclab.trials.run import resolve_config
class Count(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops, self.views = 0, 0
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.is_view:
            self.views += 1
        else:
            self.ops += 1
        return func(*args, **(kwargs or {}))
cfg = load_config(sys.argv[2], [*sys.argv[3:], "progress=false", "train.budget_tokens=null", "train.steps=10"])
cfg = resolve_config(cfg, make_source(cfg.data))
bare = BareTrial(cfg, torch.device("cpu"), compile_=False, total_steps=10)
batch = bare.batches(cfg.train.composition(), 1)[0]
bare.step(batch)  # the first step fills the per-shape caches (RoPE tables, masks)
with Count() as count:
    bare.step(batch)
print(json.dumps({"ops": count.ops, "views": count.views, "composition": cfg.train.composition()}))
"""


def count(config: Path, overrides: list[str], benchmarks: Path, site: Path | None, cwd: Path) -> dict:
    # outside the repository (cwd), so that PYTHONPATH's install, not this checkout, provides lclab
    env = {**os.environ, **({"PYTHONPATH": str(site)} if site else {})}
    out = subprocess.run([sys.executable, "-c", COUNT, str(benchmarks), str(config), *overrides], env=env, cwd=cwd,
                         capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"counting {config} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/trial/small.yaml", help="relative to the repository")
    ap.add_argument("--set", dest="overrides", action="append", default=["data.context_len=512", "data.text_len=128"],
                    help="k=v config overrides, after the default shorter lengths")
    ap.add_argument("--baseline", default=None, help="a commit to compare this checkout against")
    ap.add_argument("--name", default="step_ops")
    a = ap.parse_args()
    columns = ["code", "rows per mode", "operators per step", "views per step"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ.setdefault("LCLAB_CACHE", str(tmp / "cache"))
        sides = {"this checkout": count(ROOT / a.config, a.overrides, ROOT / "benchmarks", None, tmp)}
        if a.baseline:
            base = install(a.baseline, tmp / "baseline")
            sides[a.baseline] = count(base / "src" / a.config, a.overrides, base / "src" / "benchmarks",
                                      base / "site", tmp)
            subprocess.run(["git", "worktree", "remove", "--force", str(base / "src")], cwd=ROOT, capture_output=True)
    rows = [[k, str(v["composition"]), v["ops"], v["views"]] for k, v in sides.items()]
    extra = {"config": a.config, "overrides": a.overrides, "sides": sides}
    if a.baseline:
        extra["ops_over_baseline"] = sides["this checkout"]["ops"] / sides[a.baseline]["ops"]
        rows.append(["this checkout / baseline", "", extra["ops_over_baseline"], ""])
    report(a.name, columns, rows, extra)


if __name__ == "__main__":
    main()
