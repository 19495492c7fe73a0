"""Pruning on one objective, in single- and multi-objective studies alike (`pruner: {name: asha, objective: 0}`).

On a single-objective study the Optuna pruner decides, from `trial.report`. Optuna refuses both calls on a study with
several objectives, so there lclab keeps the bookkeeping itself: every validation's objective values go to the
trial's `intermediate` user attribute ({tokens: [value per objective]}), successive halving's rung values to `rungs`,
and the same rule as Optuna's pruner is applied to the chosen objective. Pruners without such a rule here
(hyperband) are refused at load for several objectives."""
from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING, Callable

import optuna
from optuna.trial import TrialState

if TYPE_CHECKING:
    from .space import Space

Rule = Callable[["Pruning", optuna.Trial, int, float], bool]
RULES: dict[str, Rule] = {}  # multi-objective twins of Optuna's pruners, by pruner name


def rule(name: str):
    def add(fn: Rule) -> Rule:
        RULES[name] = fn
        return fn
    return add


class Pruning:
    """The space's pruner, on objective `pruner.objective` (default 0)."""

    def __init__(self, space: Space):
        spec = space.pruner
        self.name, self.index = spec["name"], int(spec.get("objective", 0))
        self.metrics = [o["metric"] for o in space.objectives]
        self.metric, self.maximize = self.metrics[self.index], space.directions[self.index] == "maximize"
        self.options = {k: v for k, v in spec.items() if k not in ("name", "objective")}
        self.several = len(space.objectives) > 1

    @property
    def active(self) -> bool:
        return self.name != "none"

    def worse(self, value: float, than: float) -> bool:
        return value < than if self.maximize else value > than

    def judge(self, trial: optuna.Trial) -> Callable[[dict, int], str | None]:
        """The callback's judge for this trial: reports, decides, and records where a pruned trial stopped."""
        def decide(metrics: dict, tokens: int) -> str | None:
            value = metrics.get(self.metric)
            if value is None or not math.isfinite(value):
                return None
            if self.several:
                seen = dict(trial.user_attrs.get("intermediate", {}))
                seen[str(tokens)] = [metrics.get(m) for m in self.metrics]
                trial.set_user_attr("intermediate", seen)
                prune = RULES[self.name](self, trial, tokens, value)
            else:
                trial.report(value, tokens)
                prune = trial.should_prune()
            if not prune:
                return None
            trial.set_user_attr("pruned_at_tokens", tokens)
            return f"pruned at {tokens} tokens ({self.metric} = {value:.4f})"
        return decide


def _others(trial: optuna.Trial, states=None) -> list:
    return [t for t in trial.study.get_trials(deepcopy=False, states=states) if t.number != trial.number]


@rule("median")
def median(p: Pruning, trial: optuna.Trial, tokens: int, value: float) -> bool:
    """Optuna's MedianPruner: worse than the median of completed trials at the same point (after n_startup_trials)."""
    complete = _others(trial, (TrialState.COMPLETE,))
    if len(complete) < p.options.get("n_startup_trials", 2) or tokens < p.options.get("n_warmup_steps", 0):
        return False
    there = [t.user_attrs.get("intermediate", {}).get(str(tokens)) for t in complete]
    there = [v[p.index] for v in there if v is not None and v[p.index] is not None and math.isfinite(v[p.index])]
    return bool(there) and p.worse(value, statistics.median(there))


@rule("asha")
def asha(p: Pruning, trial: optuna.Trial, tokens: int, value: float) -> bool:
    """Optuna's SuccessiveHalvingPruner: at each rung (min_resource x reduction_factor^k tokens) a trial goes on
    only if it is in the best 1 / reduction_factor of every trial's value at that rung."""
    eta, rate = p.options.get("reduction_factor", 4), p.options.get("min_early_stopping_rate", 0)
    first = p.options.get("min_resource", "auto")
    if first == "auto":  # as Optuna: a hundredth of a completed trial's last reported point
        done = [max(map(int, t.user_attrs["intermediate"])) for t in _others(trial, (TrialState.COMPLETE,))
                if t.user_attrs.get("intermediate")]
        if not done:
            return False
        first = max(1, done[0] // 100)
    rungs, k = dict(trial.user_attrs.get("rungs", {})), 0
    while tokens >= first * eta ** (rate + k):
        key = str(k)
        if key not in rungs:
            rungs[key] = value
            trial.set_user_attr("rungs", rungs)
            competing = sorted([t.user_attrs["rungs"][key] for t in _others(trial) if key in t.user_attrs.get("rungs", {})]
                               + [value], reverse=p.maximize)  # best first
            # the best len // eta go on; the first eta - 1 trials of a rung go on only if best (as Optuna's)
            if p.worse(value, competing[max(0, len(competing) // eta - 1)]):
                return True
        k += 1
    return False
