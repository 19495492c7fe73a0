"""The README's main command as a new user runs it: a fresh lab and a fresh cache, default threads, 2 workers.

    lclab sweep search_space/presets/quickstart.yaml --workers 2 && lclab report quickstart -o DIR

Records the wall time of the sweep and of the report, the report's graded finding, and every seed's objective
with whether it learned. `--seed-sets 0,1,2 3,4,5` repeats it with other seeds (a copy of the preset per set);
`--train` also times `lclab train configs/trial/tiny.yaml` from a fresh cache (with its one-off warm decoder).

    python benchmarks/quickstart.py [--seed-sets 0,1,2 ...] [--train] [--name quickstart_seed_sets]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from _common import report

ROOT = Path(__file__).parents[1]
PRESET = ROOT / "search_space" / "presets" / "quickstart.yaml"


def lclab(*args, cwd: Path, env: dict) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lclab", *map(str, args)], cwd=cwd, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - started


def run(seeds: list[int] | None, tmp: Path) -> dict:
    env = {**os.environ, "LCLAB_CACHE": str(tmp / "cache"), "COLUMNS": "200"}
    space = PRESET
    if seeds is not None:  # the same preset under another name, with other seeds
        spec = yaml.safe_load(PRESET.read_text())
        spec.update(name=f"quickstart_{'_'.join(map(str, seeds))}", seeds=seeds, base=str(PRESET.parent / spec["base"]))
        space = tmp / "quickstart.yaml"
        space.write_text(yaml.safe_dump(spec))
    name = yaml.safe_load(space.read_text())["name"]
    sweep_s = lclab("sweep", space, "--workers", 2, "--lab", tmp / "lab", cwd=tmp, env=env)
    report_s = lclab("report", name, "--lab", tmp / "lab", "-o", tmp / "report", cwd=tmp, env=env)
    study = json.loads((tmp / "report" / "principles.json").read_text())["studies"][name]
    from lclab.trials.db import load_frame, storage_url

    frame = load_frame(storage_url(None, tmp / "lab"), [name])
    done = frame[frame.state == "COMPLETE"].sort_values(["param.ratio", "seed"])
    per_seed = {f"ratio {int(r)} seed {int(s)}": [round(float(v), 4), bool(learned)]
                for r, s, v, learned in done[["param.ratio", "seed", "value", "val/learned"]].values}
    ratio = next((c for c in study["claims"] if c["axis"] == "ratio"), {})
    return {"seeds": seeds or yaml.safe_load(PRESET.read_text())["seeds"], "sweep_s": sweep_s, "report_s": report_s,
            "grade": ratio.get("grade"), "claim": ratio.get("text"), "per_seed": per_seed,
            "did_not_learn": int((done["val/learned"] == 0).sum())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed-sets", nargs="*", default=None, help="comma-separated seeds per run, e.g. 0,1,2 3,4,5")
    ap.add_argument("--train", action="store_true", help="also time lclab train configs/trial/tiny.yaml (fresh cache)")
    ap.add_argument("--name", default="quickstart", help="results file (benchmarks/results/NAME.json)")
    a = ap.parse_args()
    sets = [[int(s) for s in group.split(",")] for group in a.seed_sets] if a.seed_sets else [None]
    rows, runs = [], []
    for seeds in sets:
        with tempfile.TemporaryDirectory() as tmp:
            r = run(seeds, Path(tmp))
        runs.append(r)
        rows.append([",".join(map(str, r["seeds"])), r["sweep_s"], r["report_s"], r["grade"], r["did_not_learn"]])
    extra = {"runs": runs, "command": "lclab sweep search_space/presets/quickstart.yaml --workers 2 && "
                                      "lclab report quickstart -o reports/quickstart"}
    if a.train:
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "LCLAB_CACHE": str(Path(tmp) / "cache")}
            extra["train_tiny_fresh_cache_s"] = lclab("train", ROOT / "configs/trial/tiny.yaml", "--output-dir",
                                                      Path(tmp) / "runs", cwd=Path(tmp), env=env)
    report(a.name, ["seeds", "sweep s", "report s", "ratio claim grade", "trials that did not learn"], rows, extra)


if __name__ == "__main__":
    main()
