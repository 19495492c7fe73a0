"""Trial databases with a known generative model, written into a real Optuna storage exactly as a sweep
stores its trials (params, seed, scientific key, resolved config, metrics, study space summary): the analysis
must recover the planted truth."""
from __future__ import annotations

import copy
import itertools
import json
import math
import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution

from . import MINI_BASE
METRIC = "val/loss_compressed"
LEVELS = {"pooling": ["mean", "attention"], "ratio": [4, 8, 16], "overlap": [0, 16]}
BASE = {"pooling": "mean", "ratio": 4, "overlap": 0}
# the truth: attention pooling lowers the loss by 0.10 at every ratio and by a further 0.06 at 1:16
# (pooling x ratio interaction); each doubling of the ratio costs 0.05; overlap does nothing
TRUTH = {"intercept": 2.0, "attention": -0.10, "per_doubling": 0.05, "attention_at_16": -0.06, "overlap": 0.0}


def true_value(p: dict) -> float:
    attention = p["pooling"] == "attention"
    return (TRUTH["intercept"] + TRUTH["attention"] * attention + TRUTH["per_doubling"] * math.log2(p["ratio"] / 4)
            + TRUTH["attention_at_16"] * (attention and p["ratio"] == 16) + TRUTH["overlap"] * (p["overlap"] > 0))


def planted_effects() -> dict:
    """The design-averaged effects the analysis should recover (matched against the base levels)."""
    points = [dict(zip(LEVELS, v)) for v in itertools.product(*LEVELS.values())]
    def avg(axis, level):
        return float(np.mean([true_value({**p, axis: level}) - true_value({**p, axis: BASE[axis]}) for p in points]))
    return {(axis, level): avg(axis, level) for axis in LEVELS for level in LEVELS[axis] if level != BASE[axis]}


def _config(p: dict, seed: int, steps: int) -> dict:
    from lclab.trials import config_from_dict

    cfg = config_from_dict(copy.deepcopy(MINI_BASE)).to_dict()
    cfg["seed"] = seed
    cfg["model"]["pooling"], cfg["model"]["ratio"] = p["pooling"], p["ratio"]
    cfg["model"]["encoder"].update(window=32 + p["overlap"], overlap=p["overlap"])
    cfg["train"]["steps"] = steps
    return cfg


def _study(storage: str, name: str, axes: dict, **summary) -> optuna.Study:
    """`summary`: more of the space summary a sweep stores (data_source, fidelity_of)."""
    study = optuna.create_study(study_name=name, storage=storage, direction="minimize")
    study.set_user_attr("space", {"axes": axes, "objectives": [{"metric": METRIC, "direction": "minimize"}],
                                  "sampler": "grid", "budget": {"steps": 400}, "base_point": BASE, **summary})
    study.set_user_attr("space_file", "planted")
    return study


CHANCE_LOSS = math.log(64)  # what a trial that did not learn scores: a uniform guess over 64 symbols


def _trial(p: dict, seed: int, value: float, steps: int = 400, flops_per_step: float = 1e9, learned: bool = True,
           peak_mem: float = 600.0):
    dists = {k: CategoricalDistribution(LEVELS[k]) for k in p}
    metrics = {METRIC: value, "train/tokens_seen": steps * 4096, "train/flops": steps * flops_per_step,
               "flops_per_token/encoder": 4e5 * (1.2 if p["pooling"] == "attention" else 1.0) * (1 + p["overlap"] / 32),
               "flops_per_token/total": 1e6 / p["ratio"] + 6e5, "params/total": 9e5, "sys/peak_mem_mb": peak_mem,
               "meta/data_fingerprint": "planted", "val/learned": float(learned),
               "val/learned_status": "learned: planted" if learned else "did not learn: planted at chance"}
    return optuna.trial.create_trial(
        params=p, distributions=dists, value=value,
        user_attrs={"seed": seed, "scientific_key": json.dumps(p, sort_keys=True), "config": _config(p, seed, steps),
                    "metrics": metrics, "code_version": {"commit": "planted", "dirty": False}})


def write_study(storage: str, name: str = "planted", sigma: float = 0.02, seeds: int = 4, rng_seed: int = 0,
                failed: int = 0, unlearned: tuple = (), levels: dict | None = None, mem_noise: float = 0.0,
                truth=true_value, seed_sigma: float = 0.0, **summary) -> optuna.Study:
    """`unlearned`: (point, seed) pairs whose trial stayed at chance (flagged as not learned, like a real trial);
    `levels`: a subset of LEVELS to cross (the other axes stay at BASE); `mem_noise`: seed noise of peak memory;
    `truth`: the noiseless value of a point (a proxy's own, for fidelity); `seed_sigma`: sd of an offset each seed adds
    to every configuration alike (a real seed fixes the data order); `summary`: data_source, fidelity_of."""
    rng = np.random.default_rng(rng_seed)
    offsets = np.random.default_rng([rng_seed, 1]).normal(0, seed_sigma, seeds)  # its own stream: rng's draws unchanged
    levels = levels or LEVELS
    study = _study(storage, name, {k: "scientific" if k in levels else "fixed" for k in LEVELS}, **summary)
    trials = []
    for values in itertools.product(*levels.values()):
        p = {**BASE, **dict(zip(levels, values))}
        for seed in range(seeds):
            failed_to_learn = any(p == q and seed == s for q, s in unlearned)
            value = CHANCE_LOSS if failed_to_learn else truth(p) + offsets[seed] + rng.normal(0, sigma)
            trials.append(_trial(p, seed, value, learned=not failed_to_learn,
                                 peak_mem=600.0 + rng.normal(0, mem_noise) if mem_noise else 600.0))
            if levels is not LEVELS:
                trials[-1].user_attrs["scientific_key"] = json.dumps({k: p[k] for k in levels}, sort_keys=True)
    for i in range(failed):
        trials.append(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL,
                                                user_attrs={"fail_reason": "loss diverged (nan) at step 12"}))
    study.add_trials(trials)
    return study


def write_failed_study(storage: str, name: str = "all_failed", n: int = 3) -> optuna.Study:
    study = _study(storage, name, {k: "scientific" for k in LEVELS})
    study.add_trials([optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL,
                                                user_attrs={"fail_reason": "loss diverged (nan) at step 12"})
                      for _ in range(n)])
    return study


SCALING = {"E": 1.5, "A": 3.0, "alpha": {"mean": 0.30, "attention": 0.40}, "c0": 4e11}


def write_scaling_study(storage: str, name: str = "planted_scaling", budgets=(100, 200, 400, 800, 1600, 3200),
                        seeds: int = 3, sigma: float = 0.005, rng_seed: int = 0) -> optuna.Study:
    """Two poolings trained at several step budgets: loss = E + A * (C / c0)^-alpha, alpha per pooling."""
    rng = np.random.default_rng(rng_seed)
    study = _study(storage, name, {"pooling": "scientific", "ratio": "fixed", "overlap": "fixed"})
    trials = []
    for pooling, steps, seed in itertools.product(LEVELS["pooling"], budgets, range(seeds)):
        p = {"pooling": pooling, "ratio": 4, "overlap": 0}
        c = steps * 1e9
        value = SCALING["E"] + SCALING["A"] * (c / SCALING["c0"]) ** -SCALING["alpha"][pooling] + rng.normal(0, sigma)
        t = _trial(p, seed, value, steps=steps)
        t.user_attrs["scientific_key"] = json.dumps({"pooling": pooling})
        trials.append(t)
    study.add_trials(trials)
    return study
