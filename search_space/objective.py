"""The objective a sweep worker optimizes: a point of the space becomes a trial config, is trained (or found
already settled), and its metrics and provenance are stored on the Optuna trial."""
from __future__ import annotations

import difflib
import functools
import json
import threading
import platform
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import lightning as L
import optuna
from optuna.trial import TrialState

from lclab.errors import ConfigError, DivergedError
from lclab.plugins import plugin_hash
from lclab.trials import TrialConfig, budget_steps, run_trial
from lclab.trials.callbacks import PruningReporter
from lclab.trials.distributed import device_name
from lclab.trials.optuna_internals import storage_of, trial_id

from .pruning import Pruning
from .recovery import enqueue_retry, journal_heartbeat
from .space import Axis, Space
from .study import ENUMERATED, diverged, settled_failure


@functools.cache  # the code a worker runs is what it imported at start: ask git once per process, not per trial
def code_version() -> dict:
    root = Path(__file__).parents[1]
    git = lambda *a: subprocess.run(["git", *a], cwd=root, capture_output=True, text=True)  # noqa: E731
    commit = git("rev-parse", "HEAD").stdout.strip() or "unknown"
    return {"commit": commit, "dirty": bool(git("status", "--porcelain").stdout.strip())}


def suggest(trial: optuna.Trial, axis: Axis):
    if axis.kind == "categorical":
        return trial.suggest_categorical(axis.name, axis.values)
    if axis.kind == "int":
        return trial.suggest_int(axis.name, int(axis.low), int(axis.high), step=axis.step, log=axis.log)
    return trial.suggest_float(axis.name, axis.low, axis.high, log=axis.log)


@dataclass
class Objective:
    space: Space
    lab_dir: Path
    log: str | None = None
    attrs: dict | None = None  # recorded with every trial this worker runs (Slurm job id, node, log paths)
    stop: L.Callback | None = None  # a cluster worker's stop-on-signal callback: an interrupt then leaves the trial RUNNING
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
        fresh = not trial.user_attrs  # read before this worker's identity is recorded below
        # first, so that a trial that never trains (surplus, infeasible) still names the job and log that drew it
        if self.log:
            trial.set_user_attr("log", self.log)
        for key, value in (self.attrs or {}).items():
            trial.set_user_attr(key, value)
        if space.sampler["name"] in ENUMERATED and fresh:
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
        pruning = Pruning(space)
        if pruning.active and not cfg.train.val_every:
            cfg.train.val_every = max(1, budget_steps(cfg) // 4)  # the pruner needs intermediate values
        config_hash = cfg.hash()  # the stored config below is the one that runs
        retried = "retry_of" in trial.user_attrs or "config_hash" in trial.user_attrs  # before we set it below
        trial.set_user_attr("seed", seed)
        trial.set_user_attr("config_hash", config_hash)
        trial.set_user_attr("config", cfg.to_dict())
        trial.set_user_attr("scientific_key", json.dumps({a.name: point.get(a.name) for a in space.scientific}, sort_keys=True))
        trial.set_user_attr("code_version", code_version())
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("device", device_name())  # what trains it: cpu, or cuda:i (GPU name)
        trial.set_user_attr("host_arch", platform.machine())
        trial.set_user_attr("parts", cfg.parts())  # the registered parts it uses, described, with their origins
        if cfg.plugins:
            trial.set_user_attr("plugins", {p: plugin_hash(p) for p in cfg.plugins})
        done = self._settled(trial.study, config_hash, trial.number)
        if done is not None and diverged(done):  # known to diverge: do not train it again
            trial.set_user_attr("duplicate_of", done.number)
            trial.set_user_attr("fail_reason", done.user_attrs["fail_reason"])
            trial.set_user_attr("diverged", True)
            raise DivergedError(f"same configuration as diverged trial {done.number}")
        if done is not None:  # same config and seed already trained: reuse its metrics, do not train twice
            trial.set_user_attr("duplicate_of", done.number)
            metrics = done.user_attrs.get("metrics", {})
            trial.set_user_attr("metrics", metrics)
            return self._values(trial, metrics)
        if not retried:
            self._enqueue_followers(trial, seed)
        metric = space.objectives[0]["metric"]
        callbacks = [self.stop] if self.stop else []
        if pruning.active:
            tokens_per_step = cfg.train.batch_size * (cfg.data.context_len + cfg.data.text_len)
            callbacks.append(PruningReporter(pruning.judge(trial), tokens_per_step))
        if self.announce is not None:
            self.announce(cfg, pruning.active)
        progress = ProgressSink(trial, metric)
        try:
            with journal_heartbeat(trial.study, trial):  # resume: a retried trial continues its checkpoint
                result = run_trial(cfg, resume=True, callbacks=callbacks, on_progress=progress)
        except DivergedError as err:
            trial.set_user_attr("fail_reason", str(err))
            trial.set_user_attr("diverged", True)
            raise
        except (KeyboardInterrupt, SystemExit):  # Lightning turns Ctrl-C into SystemExit after checkpointing
            if self.stop is not None:  # a cluster worker: its job is being requeued, the trial stays RUNNING for it
                trial.set_user_attr("preempted", trial.user_attrs.get("preempted", 0) + 1)
                raise
            trial.set_user_attr("interrupted", True)
            enqueue_retry(trial.study, storage_of(trial.study).get_trial(trial_id(trial)), count=False)
            raise KeyboardInterrupt from None  # Optuna records the trial as failed; the retry resumes its checkpoint
        except Exception as err:  # a crash (bad data, a bug): failed with its reason; a re-run queues the point again
            trial.set_user_attr("fail_reason", f"{type(err).__name__}: {err}"[:500])
            raise
        finally:
            progress.close()
        metrics = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float, str))}
        trial.set_user_attr("metrics", metrics)
        trial.set_user_attr("run_dir", str(result.run_dir))
        return self._values(trial, metrics)

    def _values(self, trial: optuna.Trial, metrics: dict):
        """The trial's objectives from its metrics, as Optuna takes them: one value, or a list for several."""
        values = [self._value(trial, metrics, i) for i in range(len(self.space.objectives))]
        return values if len(values) > 1 else values[0]

    def _value(self, trial: optuna.Trial, metrics: dict, i: int) -> float:
        """Objective `i` of a trained trial. A name no trial reports is the space's error, and stops the worker (every
        trial would fail alike); a value undefined for this trial (NaN, which Optuna stores as a failure) fails it
        with the metric's own reason (its `_status`)."""
        name = self.space.objectives[i]["metric"]
        value = metrics.get(name)
        if not isinstance(value, (int, float)):
            numeric = [k for k, v in metrics.items() if isinstance(v, (int, float))]
            close = difflib.get_close_matches(name, numeric, n=1)
            err = ConfigError(f"objectives.{i}.metric", f"objective '{name}' is not a metric the trials report"
                              + (f" (it holds text: {value!r})" if value is not None else ""),
                              (f"did you mean '{close[0]}'? " if close else "")
                              + f"`lclab trials {self.space.name}` shows every metric as a column", str(self.space.source))
            trial.set_user_attr("fail_reason", str(err)[:500])
            raise err
        if value != value:
            reason = metrics.get(f"{name}_status", "it is NaN")
            trial.set_user_attr("fail_reason", f"objective {name} is undefined for this trial: {reason}"[:500])
            trial.set_user_attr("undefined_objective", True)  # a result: a re-run does not train it again
        return value

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
    def _settled(study, config_hash: str, number: int):
        """An earlier trial that settled this exact configuration and seed (completed or diverged)."""
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
            if (t.number != number and t.user_attrs.get("config_hash") == config_hash and "duplicate_of" not in t.user_attrs
                    and (t.state == TrialState.COMPLETE or settled_failure(t))):
                return t
        return None


class ProgressSink:
    """Stores a running trial's latest progress on it (`progress` user attribute), for the live display and
    `lclab trials`: phase (train / warm decoder), step of steps, tokens, training loss, latest objective value.

    Progress is best effort and never holds training up: a thread of its own writes the newest snapshot, so while
    the database is slow or away (lclab.trials.outage) training goes on and only the latest snapshot is kept."""

    def __init__(self, trial: optuna.Trial, metric: str):
        self.trial, self.metric = trial, metric
        self._latest: dict | None = None
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._write, daemon=True)
        self._thread.start()

    def __call__(self, snapshot: dict) -> None:
        keep = {k: snapshot[k] for k in ("phase", "step", "steps", "tokens", "loss", "at")}
        value = snapshot["val"].get(self.metric) if snapshot["phase"] == "train" else None
        with self._wake:
            self._latest = {**keep, "objective": value}
            self._wake.notify()

    def close(self) -> None:
        """Stop writing; a write the database holds up is abandoned (the trial's outcome is stored anyway)."""
        with self._wake:
            self._closed = True
            self._wake.notify()

    def _write(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._latest is not None or self._closed)
                if self._closed:
                    return
                latest, self._latest = self._latest, None
            try:
                self.trial.set_user_attr("progress", latest)
            except (optuna.exceptions.StorageInternalError, optuna.exceptions.UpdateFinishedTrialError,
                    ConfigError) as err:  # the database failed or the trial ended meanwhile: training goes on
                print(f"progress of trial {self.trial.number} not stored: {err}", flush=True)
