"""A sweep: an Optuna study over a Space, run by local worker processes that share the trial database.

Identity: the study is named by the space; re-running the same command continues toward `n_trials`.
A configuration already completed with the same hash and seed is never trained twice. Changing the
space so that old trials become incomparable is refused (rename the study instead).
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import multiprocessing as mp
import os
import platform
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import lightning as L
import optuna
from optuna.trial import TrialState

from models import ConfigError
from trials import DivergedError, budget_steps, run_trial
from trials.distributed import device_name
from trials.config import TrialConfig
from trials.db import GRACE_S, HEARTBEAT_S, MAX_RETRIES, open_storage, storage_url

from .registry import PRUNERS, SAMPLERS, build
from .space import Axis, Space, load_space

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)
ENUMERATED = ("grid", "ablation")  # samplers whose points are all enqueued when the study is created
FOLLOWER_KEYS = ("seed", "replica_of", "nuisance_of")  # what makes an enqueued trial the same job again
optuna.logging.set_verbosity(optuna.logging.WARNING)


@functools.cache  # the code a worker runs is what it imported at start: ask git once per process, not per trial
def code_version() -> dict:
    root = Path(__file__).parents[1]
    git = lambda *a: subprocess.run(["git", *a], cwd=root, capture_output=True, text=True)  # noqa: E731
    commit = git("rev-parse", "HEAD").stdout.strip() or "unknown"
    return {"commit": commit, "dirty": bool(git("status", "--porcelain").stdout.strip())}


def space_fingerprint(space: Space) -> str:
    """What makes trials comparable: base config, axes, derived values, constraints, objectives, budget."""
    key = {"base": space.base, "axes": [vars(a) for a in space.axes], "budget": space.budget,
           "derived": {k: (p, e.source) for k, (p, e) in space.derived.items()},
           "constraints": [c.source for c in space.constraints], "objectives": space.objectives}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def suggest(trial: optuna.Trial, axis: Axis):
    if axis.kind == "categorical":
        return trial.suggest_categorical(axis.name, axis.values)
    if axis.kind == "int":
        return trial.suggest_int(axis.name, int(axis.low), int(axis.high), step=axis.step, log=axis.log)
    return trial.suggest_float(axis.name, axis.low, axis.high, log=axis.log)


class PruningReporter(L.Callback):
    """Reports the objective to Optuna at every validation (keyed by tokens seen) and stops pruned trials.
    Under DDP only rank 0 holds the trial (the others pass None) and its decision reaches every rank."""

    def __init__(self, trial: optuna.Trial | None, metric: str, tokens_per_step: int):
        self.trial, self.metric, self.tokens_per_step = trial, metric, tokens_per_step  # Optuna knows the direction

    def on_validation_end(self, trainer, module):
        if trainer.sanity_checking:
            return
        verdict = None
        value = module.val_metrics.get(self.metric)
        if self.trial is not None and value is not None and math.isfinite(value):
            tokens = trainer.global_step * self.tokens_per_step
            self.trial.report(value, tokens)
            if self.trial.should_prune():
                self.trial.set_user_attr("pruned_at_tokens", tokens)
                verdict = f"pruned at {tokens} tokens ({self.metric} = {value:.4f})"
        verdict = trainer.strategy.broadcast(verdict)  # every DDP rank stops at the same step
        if verdict is not None:
            raise optuna.TrialPruned(verdict)


class Preempted(Exception):
    """The worker was asked to stop (Slurm preemption or time limit): the trial checkpointed at a step
    boundary and stays RUNNING, for the requeued job to resume as the same Optuna trial."""


class StopRequest(L.Callback):
    """While a trial trains, SIGTERM and SIGUSR2 (Slurm's preemption and time-limit warnings) only request a stop:
    the trial stops at the next step boundary, where its state is consistent, and saves its checkpoint
    (SaveOnInterrupt reacts to the KeyboardInterrupt). Outside training the worker's own handlers apply.
    Lightning's SIGTERM handling would instead end the trial without a checkpoint. Only USR2 (submitit's warning)
    asks the worker to requeue its job: SIGTERM comes from scancel, or from Slurm's own preemption, which
    requeues by itself."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR2)

    def __init__(self):
        self.requested = False
        # the signals this process got, as a set: Slurm may deliver SIGTERM and USR2 in either order
        # (under DDP a rank may also stop on another rank's signal and get none itself)
        self.received: set[int] = set()
        self._previous: dict = {}

    def _request(self, signum, frame):
        self.requested = True
        self.received.add(signum)

    def on_train_start(self, trainer, module):
        self._previous = {s: signal.getsignal(s) for s in self.SIGNALS}
        for s in self.SIGNALS:
            signal.signal(s, self._request)

    def on_train_end(self, trainer, module):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def on_exception(self, trainer, module, exception):
        self.on_train_end(trainer, module)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        # under DDP a signal may reach one rank a step before another: all stop once any of them has it
        if trainer.strategy.reduce_boolean_decision(self.requested, all=False):
            self.requested = True
            raise KeyboardInterrupt


@dataclass
class Objective:
    space: Space
    lab_dir: Path
    log: str | None = None
    attrs: dict | None = None  # recorded with every trial this worker runs (Slurm job id, node, log paths)
    stop: StopRequest | None = None
    # rank 0 of a multi-process (DDP) worker tells its other ranks what to train, right before training it
    announce: Callable[[TrialConfig, bool], None] | None = None

    def point(self, trial: optuna.Trial) -> dict:
        point = {}
        for axis in self.space.axes:
            if axis.active(point):
                point[axis.name] = suggest(trial, axis)
        return point

    def __call__(self, trial: optuna.Trial):
        space = self.space
        if space.sampler["name"] in ENUMERATED and not trial.user_attrs:
            # every point was enqueued up front; a fresh sample only means two workers raced for the last one
            trial.set_user_attr("surplus", True)
            raise optuna.TrialPruned("surplus: every enumerated point is taken")
        seed = int(trial.user_attrs.get("seed", space.seeds[0]))
        point = self.point(trial)
        try:
            cfg = space.resolve(point, seed)
        except ConfigError as err:  # infeasible: recorded, never trained, not counted toward n_trials
            trial.set_user_attr("infeasible", f"{err.field}: {err.problem}")
            raise optuna.TrialPruned("infeasible")
        cfg.output_dir, cfg.progress = str(self.lab_dir / "runs" / space.name), False
        if space.pruner["name"] != "none" and not cfg.train.val_every:
            cfg.train.val_every = max(1, budget_steps(cfg) // 4)  # the pruner needs intermediate values
        config_hash = cfg.hash()  # the stored config below is the one that runs
        retried = "retry_of" in trial.user_attrs or "config_hash" in trial.user_attrs  # before we set it below
        trial.set_user_attr("seed", seed)
        trial.set_user_attr("config_hash", config_hash)
        trial.set_user_attr("config", cfg.to_dict())
        trial.set_user_attr("scientific_key", json.dumps({a.name: point.get(a.name) for a in space.scientific}, sort_keys=True))
        trial.set_user_attr("code_version", code_version())
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("device", device_name())  # what trains it; the host's CPU architecture apart
        trial.set_user_attr("host_arch", platform.machine())
        if self.log:
            trial.set_user_attr("log", self.log)
        for key, value in (self.attrs or {}).items():
            trial.set_user_attr(key, value)
        done = self._completed(trial.study, config_hash, trial.number)
        if done is not None and done.state == TrialState.FAIL:  # known to diverge: do not train it again
            trial.set_user_attr("duplicate_of", done.number)
            trial.set_user_attr("fail_reason", done.user_attrs["fail_reason"])
            raise DivergedError(f"same configuration as diverged trial {done.number}")
        if done is not None:  # same config and seed already trained: reuse, do not train twice
            trial.set_user_attr("duplicate_of", done.number)
            trial.set_user_attr("metrics", done.user_attrs.get("metrics", {}))
            return done.values if len(done.values) > 1 else done.value
        if not retried:
            self._enqueue_followers(trial, seed)
        metric = space.objectives[0]["metric"]
        callbacks = [self.stop] if self.stop else []
        if space.pruner["name"] != "none":
            tokens_per_step = cfg.train.batch_size * (cfg.data.context_len + cfg.data.text_len)
            callbacks.append(PruningReporter(trial, metric, tokens_per_step))
        if self.announce is not None:
            self.announce(cfg, space.pruner["name"] != "none")
        try:
            with journal_heartbeat(trial.study, trial._trial_id):  # resume: a retried trial continues its checkpoint
                result = run_trial(cfg, resume=True, callbacks=callbacks, on_progress=progress_sink(trial, metric))
        except DivergedError as err:
            trial.set_user_attr("fail_reason", str(err))
            raise
        except (KeyboardInterrupt, SystemExit):  # Lightning turns Ctrl-C into SystemExit after checkpointing
            if self.stop is not None:  # a cluster worker: its job is being requeued, the trial stays RUNNING for it
                trial.set_user_attr("preempted", trial.user_attrs.get("preempted", 0) + 1)
                if self.stop.requested:
                    raise Preempted(f"trial {trial.number} checkpointed for requeue") from None
                raise  # submitit already requeued the job and is exiting (or Slurm ended it): nothing to add
            trial.set_user_attr("interrupted", True)
            enqueue_retry(trial.study, trial.study._storage.get_trial(trial._trial_id), count=False)
            raise KeyboardInterrupt from None  # Optuna records the trial as failed; the retry resumes its checkpoint
        metrics = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float, str))}
        trial.set_user_attr("metrics", metrics)
        trial.set_user_attr("run_dir", str(result.run_dir))
        values = [metrics.get(o["metric"], float("nan")) for o in space.objectives]
        return values if len(values) > 1 else values[0]

    def _enqueue_followers(self, trial: optuna.Trial, seed: int) -> None:
        """A newly sampled configuration brings its own small nuisance search (the scientific params fixed,
        nuisance ones left to the sampler) and, for each setting, its replicas over the other seeds."""
        space, attrs = self.space, trial.user_attrs
        if "replica_of" in attrs:
            return
        if space.nuisance and "nuisance_of" not in attrs:
            scientific = {k: v for k, v in trial.params.items() if k not in {a.name for a in space.nuisance}}
            for _ in range(space.nuisance_trials - 1):
                trial.study.enqueue_trial(scientific, user_attrs={"seed": seed, "nuisance_of": trial.number},
                                          skip_if_exists=False)
        for other in space.seeds[1:]:
            trial.study.enqueue_trial(trial.params, user_attrs={"seed": other, "replica_of": trial.number})

    @staticmethod
    def _completed(study, config_hash: str, number: int):
        """An earlier trial that settled this exact configuration and seed (completed or diverged)."""
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
            if (t.number != number and t.user_attrs.get("config_hash") == config_hash and "duplicate_of" not in t.user_attrs
                    and (t.state == TrialState.COMPLETE or "fail_reason" in t.user_attrs)):
                return t
        return None


def progress_sink(trial: optuna.Trial, metric: str) -> Callable[[dict], None]:
    """Stores a running trial's latest progress on it (`progress` user attribute), for the live display and
    `lclab trials`: phase (train / warm decoder), step of steps, tokens, training loss, latest objective value."""
    def store(snapshot: dict) -> None:
        keep = {k: snapshot[k] for k in ("phase", "step", "steps", "tokens", "loss", "at")}
        value = snapshot["val"].get(metric) if snapshot["phase"] == "train" else None
        try:
            trial.set_user_attr("progress", {**keep, "objective": value})
        except optuna.exceptions.StorageInternalError as err:  # progress is best effort: training goes on
            print(f"progress of trial {trial.number} not stored: {err}", flush=True)
    return store


@contextlib.contextmanager
def journal_heartbeat(study: optuna.Study, trial_id: int):
    """Optuna's journal storage has no heartbeat: beat in a user attribute instead, so that `fail_stale` can
    retry the trial of a worker killed without warning, as Optuna does itself on SQL storages."""
    if not isinstance(study._storage, optuna.storages.JournalStorage):
        yield
        return
    done = threading.Event()

    def beat():
        while True:
            study._storage.set_trial_user_attr(trial_id, "heartbeat", time.time())
            if done.wait(HEARTBEAT_S):
                return

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def fail_stale(study: optuna.Study) -> None:
    """Fail the trials of dead workers and queue their retries (keeping intermediate values): Optuna's own
    heartbeat on SQL storages, the user-attribute heartbeat on journal files."""
    optuna.storages.fail_stale_trials(study)
    if not isinstance(study._storage, optuna.storages.JournalStorage):
        return
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if time.time() - t.user_attrs.get("heartbeat", time.time()) > GRACE_S:
            fail_and_retry(study, t, "stale")


def fail_and_retry(study: optuna.Study, trial, reason: str) -> None:
    """Fail a RUNNING trial whose worker is gone (marked with `reason`) and queue its retry, at most MAX_RETRIES
    times in a row on every storage (Optuna's heartbeat callback has the same cap on SQL storages), so a trial
    that kills its worker every time stops with its reason. Two workers may find the same stale trial at once:
    the one that loses the race to fail it leaves it alone, as Optuna's own `fail_stale_trials` does."""
    gave_up = int(trial.user_attrs.get("retries", 0)) >= MAX_RETRIES
    try:
        study._storage.set_trial_user_attr(trial._trial_id, reason, True)
        if gave_up:
            study._storage.set_trial_user_attr(trial._trial_id, "gave_up", True)
            study._storage.set_trial_user_attr(trial._trial_id, "fail_reason",
                                               f"{reason}: its worker died {MAX_RETRIES + 1} times in a row; not retried again")
        failed = study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return
    if failed and not gave_up:
        enqueue_retry(study, trial)


def enqueue_retry(study: optuna.Study, trial, count: bool = True) -> None:
    """Queue the same configuration again, keeping the trial's intermediate values: the retry resumes the
    run's last checkpoint (same config hash, same run directory). `count`: a death counts toward the retry cap,
    a user's Ctrl-C does not."""
    attrs = {k: trial.user_attrs[k] for k in FOLLOWER_KEYS if k in trial.user_attrs}
    retries = int(trial.user_attrs.get("retries", 0)) + count
    study.add_trial(optuna.trial.create_trial(
        state=TrialState.WAITING, params=trial.params, distributions=trial.distributions,
        user_attrs={**attrs, "retry_of": trial.number, "retries": retries},
        intermediate_values=dict(trial.intermediate_values)))


def open_study(space: Space, lab_dir: Path) -> optuna.Study:
    """Create the study (once, in the parent: concurrent creation races on every backend) or load it,
    refusing a space that changed in a way that makes old trials incomparable."""
    url = storage_url(space.storage, lab_dir)
    storage = open_storage(url)
    directions = [o.get("direction", "minimize") for o in space.objectives]
    study = optuna.create_study(study_name=space.name, storage=storage, directions=directions, load_if_exists=True,
                                sampler=build(SAMPLERS, space.sampler, seed=0), pruner=build(PRUNERS, space.pruner))
    fingerprint = space_fingerprint(space)
    stored = study.user_attrs.get("space_fingerprint")
    if stored is None:
        study.set_user_attr("space_fingerprint", fingerprint)
        study.set_user_attr("space_file", str(space.source))
        study.set_user_attr("space", space_summary(space))  # what analysis needs to read the trials back
        for params, seed in enumerated_points(space):
            study.enqueue_trial(params, user_attrs={"seed": seed, "replica_of": -1})
    elif stored != fingerprint:
        raise ConfigError("name", f"study '{space.name}' in {url} was run with a different space "
                          f"({study.user_attrs.get('space_file')}); its trials would not be comparable",
                          "give this space a new name, or restore the original axes/base/budget/objectives", str(space.source))
    return study


def space_summary(space: Space) -> dict:
    """Axis roles, objectives, sampler, budget and the base point (the ablation reference), as stored with the study."""
    return {"axes": {a.name: a.role for a in space.axes}, "objectives": space.objectives,
            "sampler": space.sampler["name"], "budget": space.budget,
            "base_point": {a.name: a.levels()[0] for a in space.axes if a.active({})}}


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


def target_trials(space: Space) -> int:
    """Trials a sweep trains: each configuration x its nuisance settings x its seeds."""
    configs = len(enumerated_points(space)) // len(space.seeds) or space.n_trials
    return configs * (space.nuisance_trials if space.nuisance else 1) * len(space.seeds)


def replicate_top(study: optuna.Study, space: Space, k: int, n_seeds: int) -> list[dict]:
    """Enqueue the best k scientific configurations (scored by their best nuisance setting, averaged
    over seeds) with n_seeds new seeds each, so that analysis has variance to work with."""
    from trials.db import load_frame

    frame = load_frame(study._storage, [study.study_name])
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
    return chosen


def worker(space_path: str, lab_dir: str, threads: int, log: str | None = None, storage: str | None = None) -> None:
    import torch

    if log:  # a worker's output (Lightning, tracebacks) goes to its own file, not over the live display
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    torch.set_num_threads(threads)
    space = load_space(space_path, storage)
    study = optuna.load_study(study_name=space.name, storage=open_storage(storage_url(space.storage, lab_dir)),
                              sampler=build(SAMPLERS, space.sampler, seed=os.getpid()), pruner=build(PRUNERS, space.pruner))
    stop = StopAt(target_trials(space) + study.user_attrs.get("extra_trials", 0), space.sampler["name"] in ENUMERATED)
    if stop.reached(study):  # optimize() would start a trial before asking the callback
        return
    study.optimize(Objective(space, Path(lab_dir), log), callbacks=[stop], catch=(DivergedError,), gc_after_trial=True)


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


def trained(study: optuna.Study) -> int:
    """Trials that settled their configuration: completed, pruned by the pruner, or diverged (a result too).
    Infeasible points and workers that died (retried) do not count."""
    return sum(1 for t in study.get_trials(deepcopy=False, states=(*COUNTED, TrialState.FAIL))
               if not {"infeasible", "surplus"} & set(t.user_attrs) and (t.state != TrialState.FAIL or "fail_reason" in t.user_attrs))


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
    """Trials by state, with INFEASIBLE (points that break a constraint: recorded as pruned, never trained) apart."""
    out = {s.name: 0 for s in TrialState} | {"INFEASIBLE": 0}
    for t in study.get_trials(deepcopy=False):
        out["INFEASIBLE" if t.state == TrialState.PRUNED and "infeasible" in t.user_attrs else t.state.name] += 1
    return out


def run_sweep(space: Space, lab_dir: Path, workers: int = 1, on_tick=None,
              replicate: tuple[int, int] | None = None, on_note=None) -> optuna.Study:
    """Run `workers` local processes against the study until it reaches its target; Ctrl-C stops them,
    leaving running trials to be resumed from their checkpoints by the next run. `replicate` = (k, seeds)
    first enqueues the best k configurations with that many new seeds.

    The exit tells the truth: a worker killed from outside whose trial was then finished elsewhere is a note
    (`on_note`), not a failure; a trial left RUNNING by a dead worker (a re-run inside the heartbeat grace) is waited
    for until it can be resumed, and resumed; work still left at the end is a SweepError that says what and why."""
    lab_dir.mkdir(parents=True, exist_ok=True)
    study = open_study(space, lab_dir)
    if replicate:
        replicate_top(study, space, *replicate)
    threads = max(1, (os.cpu_count() or 1) // workers)
    ctx = mp.get_context("spawn")
    died: list[str] = []
    for attempt in range(2):  # a second round only for trials a dead worker left RUNNING
        stamp = time.strftime("%Y%m%d-%H%M%S")
        logs = [str((lab_dir / "logs" / space.name / f"{stamp}-worker{i}.log").resolve()) for i in range(workers)]
        procs = [ctx.Process(target=worker, args=(str(space.source), str(lab_dir), threads, log, space.storage))
                 for log in logs]
        _watch(procs, study, on_tick)
        died += [_death(p, log) for p, log in zip(procs, logs) if p.exitcode != 0]
        if attempt or not _wait_for_stale(study, on_tick, on_note):
            break
    left = unfinished(study, space)
    if died and left:
        raise SweepError(f"{'; '.join(died)}. {left} Fix the cause and run the same command to resume.")
    if left:
        raise SweepError(f"{left} Run the same command to resume.")
    if died and on_note:
        on_note(f"{'; '.join(died)}. Their trials were resumed from their checkpoints: every point is complete.")
    return study


def _watch(procs, study: optuna.Study, on_tick) -> None:
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            if on_tick:
                on_tick(study)
            time.sleep(1.0)
    except KeyboardInterrupt:  # the workers got the same SIGINT: let them checkpoint and record their trials
        for p in procs:
            p.join(timeout=120)
            if p.is_alive():
                p.terminate()
        raise
    if on_tick:
        on_tick(study)


def _death(proc, log: str) -> str:
    if proc.exitcode < 0:
        return f"a worker was killed by signal {-proc.exitcode} (from outside, no traceback; its log: {log})"
    return f"a worker exited with an error (its traceback is in {log})"


def _wait_for_stale(study: optuna.Study, on_tick, on_note) -> bool:
    """Trials left RUNNING with no worker of this run alive: a dead worker's (resumable once its heartbeat is stale,
    within the grace) or another sweep's (its heartbeat stays fresh). Wait out the grace; True when retries are
    queued to run."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not running:
        return False
    if on_note:
        on_note(f"{len(running)} trial(s) RUNNING with no worker of this run alive: waiting up to {GRACE_S + 2 * HEARTBEAT_S} s "
                "for a dead worker's heartbeat to go stale, then resuming them from their checkpoints")
    deadline = time.time() + GRACE_S + 2 * HEARTBEAT_S
    while time.time() < deadline and study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        fail_stale(study)
        if on_tick:
            on_tick(study)
        time.sleep(1.0)
    return bool(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def unfinished(study: optuna.Study, space: Space) -> str:
    """What keeps the study from its target, in words ("" when nothing does)."""
    c, extra = counts(study), study.user_attrs.get("extra_trials", 0)
    enumerated = space.sampler["name"] in ENUMERATED  # done when every enqueued point is settled
    target = (len(enumerated_points(space)) if enumerated else target_trials(space)) + extra
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


class SweepError(RuntimeError):
    """A worker died of an unexpected error: never reported as a successful sweep."""
