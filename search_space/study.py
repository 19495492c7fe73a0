"""A sweep's study: its identity (named by the space, fingerprinted so that incomparable trials are refused), the
points enumerated up front, the target it runs to, and how far it is (counts, ETA, what is unfinished).

Loads neither torch nor Lightning: the read-only commands (`lclab studies`, the live display) use it."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from optuna.trial import TrialState

from lclab.errors import ConfigError
from lclab.plugins import plugin_hash
from lclab.trials.db import MAX_RETRIES, NEVER_TRAINED, load_frame, open_storage, redact, storage_url
from lclab.trials.optuna_internals import storage_of

from .recovery import fail_stale
from .registry import PRUNERS, SAMPLERS, build

if TYPE_CHECKING:
    from .space import Space

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)
ENUMERATED = ("grid", "ablation")  # samplers whose points are all enqueued when the study is created


def space_fingerprint(space: Space) -> str:
    """What makes trials comparable: base config, axes, derived values, constraints, objectives, budget."""
    key = {"base": space.base, "axes": [vars(a) for a in space.axes], "budget": space.budget,
           "derived": {k: (p, e.source) for k, (p, e) in space.derived.items()},
           "constraints": [c.source for c in space.constraints], "objectives": space.objectives}
    if space.plugins:  # trials of changed plugin code are not comparable with the old ones
        key["plugin_code"] = sorted(plugin_hash(p) for p in space.plugins)
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def open_study(space: Space, lab_dir: Path, worker_seed: int | None = None) -> optuna.Study:
    """The space's study with its sampler and pruner. Without `worker_seed` (the sweep's parent) it is created if
    new, enumerated points are queued, and a space changed so that old trials become incomparable is refused;
    a worker (each with its own sampler seed) only loads it: concurrent creation races on every backend."""
    url = storage_url(space.storage, lab_dir)
    storage = open_storage(url)
    sampler, pruner = build(SAMPLERS, space.sampler, seed=worker_seed or 0), build(PRUNERS, space.pruner)
    if worker_seed is not None:
        return optuna.load_study(study_name=space.name, storage=storage, sampler=sampler, pruner=pruner)
    directions = space.directions
    study = optuna.create_study(study_name=space.name, storage=storage, directions=directions, load_if_exists=True,
                                sampler=sampler, pruner=pruner)
    fingerprint = space_fingerprint(space)
    stored = study.user_attrs.get("space_fingerprint")
    if stored is None:
        study.set_user_attr("space_fingerprint", fingerprint)
        study.set_user_attr("space_file", str(space.source))
        study.set_user_attr("space", space_summary(space))  # what analysis needs to read the trials back
        for params, seed in enumerated_points(space):
            study.enqueue_trial(params, user_attrs={"seed": seed, "replica_of": -1})
    elif study.user_attrs.get("space", {}).get("fidelity_of") != space.fidelity_of and stored == fingerprint:
        # which study this one is a proxy of does not change its trials: a twin declared later is recorded
        study.set_user_attr("space", space_summary(space))
    elif stored != fingerprint:
        raise ConfigError("name", f"study '{space.name}' in {redact(url)} was run with a different space "
                          f"({study.user_attrs.get('space_file')}); its trials would not be comparable",
                          "give this space a new name, or restore the original axes/base/budget/objectives", str(space.source))
    return study


def space_summary(space: Space) -> dict:
    """Axis roles, objectives, sampler, budget, the base point (the ablation reference), where the data comes from and
    the study this one is a proxy of, as stored with the study."""
    return {"axes": {a.name: a.role for a in space.axes}, "objectives": space.objectives,
            "sampler": space.sampler["name"], "budget": space.budget,
            "base_point": {a.name: a.levels()[0] for a in space.axes if a.active({})},
            "data_source": space.data_source, "fidelity_of": space.fidelity_of}


def enumerated_points(space: Space) -> list[tuple[dict, int]]:
    """Grid: every point x every seed. Ablation: the base, then one axis changed at a time, x every seed."""
    kind = space.sampler["name"]
    if kind == "grid":
        points = space.grid()
    elif kind == "ablation":
        base = space_summary(space)["base_point"]
        points = [base] + [{**base, a.name: v} for a in space.axes for v in a.levels()[1:]]
    else:
        return []
    return [(p, s) for p in points for s in space.seeds]


def target_trials(space: Space, study: optuna.Study) -> int:
    """Trials the sweep settles: every enumerated point (grid, ablation), or each sampled configuration x its nuisance
    settings x its seeds; plus the replicas `--replicate-top` queued."""
    extra = study.user_attrs.get("extra_trials", 0)
    if space.sampler["name"] in ENUMERATED:
        return len(enumerated_points(space)) + extra
    return space.n_trials * (space.nuisance_trials if space.nuisance else 1) * len(space.seeds) + extra


def replicate_top(study: optuna.Study, space: Space, k: int, n_seeds: int) -> str:
    """Enqueue the best k scientific configurations (scored by their best nuisance setting, averaged
    over seeds) with n_seeds new seeds each, so that analysis has variance to work with; says what it did.
    Replicas an earlier call queued and no worker has trained yet (an interrupted run, re-run as told) are
    trained first, and no new ones are added: else every resume would add n_seeds more."""
    pending = [t for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING))
               if "replica_of" in t.user_attrs]
    if pending:
        return (f"{len(pending)} replica(s) an earlier --replicate-top queued are not trained yet: they are trained now, "
                "and no new seeds are added (run it again once they are done to add more)")
    frame = load_frame(storage_of(study), [study.study_name])
    done = frame[frame.state == "COMPLETE"] if not frame.empty else frame
    if done.empty:
        raise ConfigError("--replicate-top", "the study has no completed trials yet", "run the sweep first", str(space.source))
    maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    best_nuisance = done[done.nuisance_best] if "nuisance_best" in done else done
    scores = best_nuisance.groupby("scientific_key")["value"].mean().sort_values(ascending=not maximize)
    used = set(frame["seed"].dropna().astype(int))
    new_seeds = [s for s in range(max(used) + 1, max(used) + 1 + n_seeds)]
    chosen = []
    for key in scores.index[:k]:
        row = best_nuisance[best_nuisance.scientific_key == key].iloc[0]
        params = {c.removeprefix("param."): getattr(row[c], "item", lambda: row[c])()  # numpy -> python scalars
                  for c in frame.columns if c.startswith("param.") and row[c] == row[c]}
        for seed in new_seeds:
            study.enqueue_trial(params, user_attrs={"seed": seed, "replica_of": int(row["number"])})
        chosen.append(params)
    study.set_user_attr("extra_trials", study.user_attrs.get("extra_trials", 0) + len(chosen) * len(new_seeds))
    return f"the best {len(chosen)} configuration(s) are queued with new seed(s) {', '.join(map(str, new_seeds))}"


class StopAt:
    """Stops a worker once the study holds `target` trained trials (complete or pruned; infeasible ones do not
    count), or, for enumerated spaces (grid, ablation), as soon as no enqueued point is left to take."""

    def __init__(self, target: int, enumerated: bool = False):
        self.target, self.enumerated = target, enumerated

    def reached(self, study: optuna.Study) -> bool:
        fail_stale(study)  # a dead worker's trial becomes a WAITING retry first
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))  # replicas of sampled configs finish first
        return not waiting and (self.enumerated or trained(study) >= self.target)

    def __call__(self, study: optuna.Study, trial) -> None:
        if self.reached(study):
            study.stop()


def diverged(trial) -> bool:
    """A FAIL that is the configuration's result (its loss diverged), not a crash or a dead worker. Trials stored
    before the `diverged` attribute existed are known by their reason."""
    reason = str(trial.user_attrs.get("fail_reason", ""))
    return bool(trial.user_attrs.get("diverged")) or reason.startswith(("training loss is", "same configuration as diverged"))


def settled_failure(trial) -> bool:
    """A FAIL that is the configuration's result, so that training it again would only repeat it: its loss diverged, or
    it trained to the end and its objective is undefined (NaN, which Optuna cannot store), e.g. retention."""
    return diverged(trial) or bool(trial.user_attrs.get("undefined_objective"))


def trained(study: optuna.Study) -> int:
    """Trials that settled their configuration: completed, pruned by the pruner, or failed as a result (diverged,
    objective undefined). Infeasible points, crashes and workers that died (retried) do not count."""
    return sum(1 for t in study.get_trials(deepcopy=False, states=(*COUNTED, TrialState.FAIL))
               if not never_trained(t) and (t.state != TrialState.FAIL or settled_failure(t)))


def never_trained(trial) -> str | None:
    """INFEASIBLE or SURPLUS for a trial pruned before it trained (`NEVER_TRAINED`), else None."""
    if trial.state != TrialState.PRUNED:
        return None
    return next((attr.upper() for attr in NEVER_TRAINED if attr in trial.user_attrs), None)


def requeue_crashed(study: optuna.Study, space: Space, force: bool = False) -> int:
    """On a re-run, queue again every enumerated point (grid, ablation) that has no result and nothing queued or
    running because its trials crashed: while it crashed at most MAX_RETRIES times, or always with `force`
    (`--retry-failed`, once the cause is fixed). Returns how many points were queued."""
    if space.sampler["name"] not in ENUMERATED:
        return 0
    key = lambda params, seed: (json.dumps(params, sort_keys=True, default=str), seed)  # noqa: E731
    covered, crashes = set(), {}
    for t in study.get_trials(deepcopy=False):
        k = key(t.params, t.user_attrs.get("seed"))
        if "surplus" in t.user_attrs:  # a sample drawn after the grid ran out: not a point of it
            continue
        if t.state != TrialState.FAIL or settled_failure(t):  # a result, or queued / running (a dead worker's retry too)
            covered.add(k)
        else:
            crashes[k] = crashes.get(k, 0) + 1
    queued = 0
    for params, seed in enumerated_points(space):
        k = key(params, seed)
        if k not in covered and k in crashes and (force or crashes[k] <= MAX_RETRIES):
            study.enqueue_trial(params, user_attrs={"seed": seed, "replica_of": -1, "crashes": crashes[k]})
            queued += 1
    return queued


def eta_s(study: optuna.Study, target: int, workers: int) -> float | None:
    """Seconds until the study reaches `target`, from the wall time of its trials alone (the one-off warm decoder
    is not a trial's duration), the work left in running trials and the number of workers; None before any trial
    has completed."""
    walls = [t.user_attrs["metrics"]["sys/wall_s"] for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
             if "duplicate_of" not in t.user_attrs and "sys/wall_s" in t.user_attrs.get("metrics", {})]
    if not walls:
        return None
    running = [t.user_attrs.get("progress") or {} for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
    in_flight = sum(p["step"] / max(1, p["steps"]) for p in running if p.get("phase") == "train")
    left = max(0.0, target - trained(study) - in_flight)
    return left * (sum(walls) / len(walls)) / max(1, workers)


def counts(study: optuna.Study) -> dict[str, int]:
    """Trials by state, with INFEASIBLE (points that break a constraint: recorded as pruned, never trained) apart,
    and SURPLUS (samples two workers drew racing for an enumerated space's last point: pruned, never trained, no
    point of the design) apart where there are any."""
    out = {s.name: 0 for s in TrialState} | {"INFEASIBLE": 0}
    for t in study.get_trials(deepcopy=False):
        state = never_trained(t) or t.state.name
        out[state] = out.get(state, 0) + 1
    return out


def unfinished(study: optuna.Study, space: Space) -> str:
    """What keeps the study from its target, in words ("" when nothing does)."""
    c, target = counts(study), target_trials(space, study)
    enumerated = space.sampler["name"] in ENUMERATED  # done when every enqueued point is settled
    parts = []
    if c["RUNNING"]:
        parts.append(f"{c['RUNNING']} trial(s) are still RUNNING with a live heartbeat: another worker is training them")
    if c["WAITING"]:
        parts.append(f"{c['WAITING']} trial(s) are queued and not trained")
    missing = target - trained(study) - (c["INFEASIBLE"] if enumerated else 0)
    if missing > 0 and not parts:
        gave_up = sum(1 for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if t.user_attrs.get("gave_up"))
        parts.append(f"{missing} of {target} trials are missing" + (f" ({gave_up} failed for good: see lclab trials)" if gave_up else ""))
    return "; ".join(parts) + "." if parts else ""
