"""Loading a study into a DataFrame: lclab's `load_frame` vs Optuna's `study.trials_dataframe()` on the
same database, for 10,000 trials with lclab-sized user attributes (target: < 1 s).

    python benchmarks/trial_db.py [--trials 10000] [--postgres URL]
"""
from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import optuna

from _common import report
from lclab.trials.db import load_frame, open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)


def fill(url: str, n: int) -> None:
    """n finished trials with params, intermediate values and metrics as a sweep stores them."""
    storage = open_storage(url)
    study = optuna.create_study(study_name="bench", storage=storage)
    rng = random.Random(0)
    dists = {"ratio": optuna.distributions.CategoricalDistribution([4, 8, 16]),
             "pooling": optuna.distributions.CategoricalDistribution(["mean", "max", "attention"]),
             "lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)}
    trials = []
    for i in range(n):
        metrics = {f"val/metric_{k}": rng.random() for k in range(30)}
        trials.append(optuna.trial.create_trial(
            params={"ratio": rng.choice([4, 8, 16]), "pooling": rng.choice(["mean", "max", "attention"]),
                    "lr": 10 ** rng.uniform(-4, -2)},
            distributions=dists, value=rng.random(), intermediate_values={1000 * k: rng.random() for k in range(4)},
            user_attrs={"metrics": metrics, "seed": i % 3, "config_hash": f"{i:016x}", "scientific_key": str(i % 27)}))
    study.add_trials(trials)


def timed(fn, repeats=3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--postgres", default=None, help="URL of an empty PostgreSQL database")
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        urls = {"sqlite": f"sqlite:///{Path(tmp) / 'bench.db'}"}
        if a.postgres:
            urls["postgresql"] = a.postgres
        for name, url in urls.items():
            fill(url, a.trials)
            # both cold: a fresh storage each time (Optuna caches finished trials inside one storage object)
            ours = timed(lambda: load_frame(url, ["bench"]))
            theirs = timed(lambda: optuna.load_study(study_name="bench", storage=open_storage(url)).trials_dataframe())
            rows.append([name, a.trials, ours, theirs, ours / theirs])
    report("trial_db", ["storage", "trials", "load_frame s", "trials_dataframe s", "ratio"], rows, {"target_s": 1.0})


if __name__ == "__main__":
    main()
