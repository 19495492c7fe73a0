"""Samplers and pruners chosen by name. Each builder takes the space's options mapping (minus `name`)."""
from __future__ import annotations

from typing import Callable

import optuna


def _tpe(seed, **kw):
    # multivariate + group model conditional spaces jointly; constant liar keeps parallel workers apart
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True, **kw)


SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    "tpe": _tpe,
    "random": lambda seed, **kw: optuna.samplers.RandomSampler(seed=seed),
    "nsga2": lambda seed, **kw: optuna.samplers.NSGAIISampler(seed=seed, **kw),
    # grid and ablation enumerate their points up front and enqueue them; sampling is never needed
    "grid": lambda seed, **kw: optuna.samplers.RandomSampler(seed=seed),
    "ablation": lambda seed, **kw: optuna.samplers.RandomSampler(seed=seed),
}

PRUNERS: dict[str, Callable[..., optuna.pruners.BasePruner]] = {
    "none": lambda **kw: optuna.pruners.NopPruner(),
    "median": lambda **kw: optuna.pruners.MedianPruner(**{"n_startup_trials": 2, **kw}),
    "asha": lambda **kw: optuna.pruners.SuccessiveHalvingPruner(**kw),
    "hyperband": lambda **kw: optuna.pruners.HyperbandPruner(**kw),
}


def build(registry: dict, spec: dict, **extra):
    options = {k: v for k, v in spec.items() if k != "name"}
    return registry[spec["name"]](**extra, **options)
