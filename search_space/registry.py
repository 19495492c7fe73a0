"""Samplers and pruners chosen by name (`sampler: tpe`, `pruner: {name: asha, ...}`). Each entry is a builder that
takes the space's options mapping (minus `name`); its docstring's first line describes it. Plugins and installed
packages add their own (entry-point groups `lclab.sampler`, `lclab.pruner`)."""
from __future__ import annotations

import optuna

from lclab.errors import ConfigError
from lclab.registry import Registry

SAMPLERS: Registry = Registry("sampler", "sampler", "lclab.sampler")
PRUNERS: Registry = Registry("pruner", "pruner", "lclab.pruner")


@SAMPLERS.register("tpe")
def tpe(seed, **kw):
    """Multivariate, grouped TPE with a constant liar (parallel workers do not sample the same point)."""
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True, **kw)


@SAMPLERS.register("random")
def random(seed):
    """Uniform random points (several objectives allowed)."""
    return optuna.samplers.RandomSampler(seed=seed)


@SAMPLERS.register("nsga2")
def nsga2(seed, **kw):
    """NSGA-II: a Pareto front over several objectives."""
    return optuna.samplers.NSGAIISampler(seed=seed, **kw)


@SAMPLERS.register("grid")
def grid(seed):
    """Every point of the space x every seed, enqueued when the study is created."""
    return optuna.samplers.RandomSampler(seed=seed)  # never asked: every point is enqueued


@SAMPLERS.register("ablation")
def ablation(seed):
    """The base point, then one axis changed at a time, x every seed, enqueued when the study is created."""
    return optuna.samplers.RandomSampler(seed=seed)  # never asked: every point is enqueued


@PRUNERS.register("none")
def no_pruning(**kw):
    """Every trial trains to its budget."""
    return optuna.pruners.NopPruner()


@PRUNERS.register("median")
def median(**kw):
    """Stop a trial below the median of earlier trials at the same step (after 2 trials)."""
    return optuna.pruners.MedianPruner(**{"n_startup_trials": 2, **kw})


@PRUNERS.register("asha")
def asha(**kw):
    """Asynchronous successive halving: keep the best fraction at each rung of tokens."""
    return optuna.pruners.SuccessiveHalvingPruner(**kw)


@PRUNERS.register("hyperband")
def hyperband(**kw):
    """Hyperband: successive halving over several brackets of budgets."""
    return optuna.pruners.HyperbandPruner(**kw)


def build(registry: Registry, spec: dict, **extra):
    """The entry `spec["name"]` built with the spec's options; `objective` (which objective a pruner prunes on) is
    lclab's own and read by `lclab.search_space.pruning`."""
    options = {k: v for k, v in spec.items() if k not in ("name", "objective")}
    built = registry[spec["name"]](**extra, **options)
    want = {"sampler": optuna.samplers.BaseSampler, "pruner": optuna.pruners.BasePruner}[registry.kind]
    if not isinstance(built, want):  # else every worker fails at its first trial, on an Optuna method it lacks
        raise ConfigError(registry.field, f"{registry.kind} '{spec['name']}' from {registry.origin(spec['name'])} "
                          f"built a {type(built).__name__}, not an optuna.{want.__module__.split('.')[1]}.{want.__name__}",
                          f"make the builder return an Optuna {registry.kind}")
    return built
