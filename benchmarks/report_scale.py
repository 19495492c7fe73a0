"""`lclab report` on 1,000 trials (target: under a minute): a planted-truth study written into a real SQLite
storage, then load + analysis + rendering, timed against loading the frame alone.

    python benchmarks/report_scale.py [--trials 1000]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import optuna

from _common import report
from lclab.analysis.load import load
from lclab.analysis.report import build
from lclab.testing import planted
from lclab.trials.db import load_frame

optuna.logging.set_verbosity(optuna.logging.WARNING)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=1000)
    a = ap.parse_args()
    configs = 12  # pooling x ratio x overlap of the planted design
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/lab.db"
        planted.write_study(url, "big", seeds=max(1, a.trials // configs))
        t0 = time.perf_counter()
        frame = load_frame(url, ["big"])
        t_frame = time.perf_counter() - t0
        t0 = time.perf_counter()
        paths = build(load(url, ["big"]), ["big"], Path(tmp) / "report")
        t_report = time.perf_counter() - t0
        size = paths["html"].stat().st_size / 2**20
    rows = [[len(frame), t_frame, t_report, t_report / t_frame, size, "yes" if t_report < 60 else "NO"]]
    report("report_scale", ["trials", "load_frame s", "report s", "report / load", "html MB", "under 60 s"], rows,
           {"target_s": 60})


if __name__ == "__main__":
    main()
