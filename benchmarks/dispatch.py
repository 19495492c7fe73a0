"""Slurm dispatch on the local one-node cluster (slurm/local_cluster/up.sh, SLURM_CONF exported): seconds from
`lclab sweep --cluster` to the first trial running, and the lclab worker's per-trial overhead (dispatch,
storage, bookkeeping) against the trial's own run time (`sys/wall_s`: data, model, training, validation).

    python benchmarks/dispatch.py [--trials 8] [--steps 50] [--jobs 2]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import optuna

from _common import report
from lclab.search_space.space import load_space
from lclab.slurm.dispatch import sacct, submit
from lclab.slurm.profiles import load_profile
from lclab.testing import mini_space
from lclab.trials.db import load_frame, open_storage, storage_url

optuna.logging.set_verbosity(optuna.logging.WARNING)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        lrs = [1e-3 * (1 + i / 10) for i in range(a.trials)]
        space = load_space(mini_space(tmp, name="bench", axes={"lr_encoder": {"values": lrs}}, seeds=[0],
                                      n_trials=a.trials, budget={"steps": a.steps}))
        started = time.time()
        jobs = submit(space, tmp / "lab", load_profile("local_slurm"), a.jobs, threads=1)
        study = optuna.load_study(study_name="bench", storage=open_storage(storage_url(None, tmp / "lab")))
        while not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.COMPLETE)):
            time.sleep(0.1)
        first = time.time() - started
        while not all(sacct([j.job_id for j in jobs]).get(j.job_id, {}).get("state") == "COMPLETED" for j in jobs):
            time.sleep(1)
        total = time.time() - started
        frame = load_frame(storage_url(None, tmp / "lab"), ["bench"])
    done = frame[frame.state == "COMPLETE"]
    trial_s, run_s = done.duration_s.mean(), done["sys/wall_s"].mean()
    rows = [[len(done), a.jobs, first, trial_s, run_s, (trial_s - run_s) / run_s, total,
             (total - first) / (len(done) / a.jobs) / run_s]]
    report("dispatch", ["trials", "jobs", "s to first trial", "trial s (Optuna)", "run s (trial)",
                        "per-trial overhead / run", "sweep s", "wall per trial / run"], rows)


if __name__ == "__main__":
    main()
