"""What runs inside a Slurm job (or submitit's local/debug executor): one sweep worker.

A worker pulls trials from the shared study until the study reaches its target, so a free GPU always starts
the next trial (no barrier between trials or jobs). Preemption-safe:

- On the preemption/timeout signal (USR2) the running trial stops at the next step boundary, saves its
  checkpoint and stays RUNNING; submitit requeues the job, and the requeued job (same job id) resumes that
  same Optuna trial from the checkpoint, with its intermediate values.
- A job requeued without warning (`scontrol requeue`, node failure with requeue) resumes its RUNNING trial the
  same way, from the last periodic checkpoint.
- A job killed for good is caught by Optuna's heartbeat: its trial is failed once stale and retried elsewhere
  from the checkpoint, keeping its intermediate values.

A job of several tasks (a profile with tasks_per_node or nodes above 1: one task per GPU) trains each trial with
DDP: rank 0 runs the loop above and alone talks to the study; before each trial it sends the resolved config to
the other ranks, which train it with it (stopping, pruning and checkpointing together) and record nothing."""
from __future__ import annotations

import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import optuna
import submitit
from optuna.trial import TrialState

from lclab.errors import DivergedError
from lclab.search_space.objective import Objective
from lclab.search_space.space import load_space
from lclab.search_space.study import ENUMERATED, StopAt, open_study, target_trials
from lclab.trials import TrialConfig, run_trial
from lclab.trials.callbacks import PruningReporter
from lclab.trials.distributed import broadcast, use_gpu
from lclab.trials.optuna_internals import heartbeat, storage_of, trial_id, trial_of

from .preemption import Preempted, StopRequest

# how long a rank waits for the others (a collective) before its job fails: a dead rank must not hold GPUs for hours
COLLECTIVE_TIMEOUT = timedelta(minutes=15)
USR2_AFTER_TERM_S = 10.0


def job_identity() -> dict:
    """What every trial records about the job that ran it."""
    env = submitit.JobEnvironment()
    try:
        logs = {"slurm_stdout": str(env.paths.stdout), "slurm_stderr": str(env.paths.stderr)}
    except KeyError:  # the debug executor runs in this process and writes no log files
        logs = {"slurm_stdout": None, "slurm_stderr": None}
    return {"slurm_job": str(env.job_id), "slurm_job_id": str(env.raw_job_id), "slurm_array_index": env.array_task_id,
            "node": env.hostname, **logs,
            "slurm_restarts": int(os.environ.get("SLURM_RESTART_COUNT", 0))}


def run_one(study: optuna.Study, objective: Objective, trial: optuna.Trial) -> None:
    """Train one trial and tell the study its outcome. Preempted leaves it RUNNING for this job's requeue."""
    # Optuna beats only inside study.optimize; this worker asks and tells itself (to leave a preempted trial RUNNING)
    with heartbeat(study, trial):
        try:
            value = objective(trial)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
            return
        except DivergedError:
            study.tell(trial, state=TrialState.FAIL)
            return
        except (KeyboardInterrupt, SystemExit):  # the trial stays RUNNING for the requeued job or a heartbeat retry
            if objective.stop is not None and objective.stop.requested:  # checkpointed on our signal: requeue
                raise Preempted(f"trial {trial.number} checkpointed for requeue") from None
            raise  # submitit already requeued the job and is exiting (or Slurm ended it): nothing to add
        except optuna.exceptions.UpdateFinishedTrialError:
            raise  # finished elsewhere meanwhile: nothing of ours to record on it
        except Exception as err:  # a crash: the trial fails with its reason and log path, the job fails loudly
            trial.set_user_attr("fail_reason", f"{type(err).__name__}: {err}"[:500])
            study.tell(trial, state=TrialState.FAIL)
            raise
    study.tell(trial, value)


def own_running_trials(study: optuna.Study, job: str) -> list[int]:
    """Trials this job (same Slurm job / array task id) was running when it was requeued."""
    return [trial_id(t) for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t.user_attrs.get("slurm_job") == job]


def join_process_group() -> int:
    """Join this job's tasks into one process group (one task per device); returns the number of tasks."""
    import torch
    import torch.distributed as dist

    env = submitit.JobEnvironment()
    if env.num_tasks == 1:
        return 1
    # every task sees all of its node's GPUs; Lightning picks cuda:LOCAL_RANK
    submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
    if use_gpu():
        torch.cuda.set_device(env.local_rank)
    dist.init_process_group("nccl" if use_gpu() else "gloo", timeout=COLLECTIVE_TIMEOUT)
    return env.num_tasks


def announce(cfg: TrialConfig, prune: bool) -> None:
    broadcast((cfg, prune))


def follow(stop: StopRequest) -> dict:
    """A rank above 0: train whatever rank 0 announces, until it announces the end (None)."""
    ran = 0
    while (task := broadcast()) is not None:
        cfg, prune = task
        try:
            run_trial(cfg, resume=True, callbacks=[stop, *([PruningReporter(None, 0)] if prune else [])])
        except (optuna.TrialPruned, DivergedError):
            pass  # rank 0 saw the same and records it
        except (KeyboardInterrupt, SystemExit):
            return {"trials": ran, "stopped": True}  # checkpointed; rank 0 requeues the job
        ran += 1
    return {"trials": ran}


class SweepJob(submitit.helpers.Checkpointable):
    """A checkpointable sweep worker: submitit calls `checkpoint` on preemption/timeout and requeues the job
    with the same arguments (Checkpointable's default); the requeued job finds its RUNNING trial by job id."""

    def __call__(self, space_path: str, lab_dir: str, threads: int, storage: str | None = None) -> dict:
        import torch

        torch.set_num_threads(threads)
        requeue = signal.getsignal(signal.SIGUSR2)  # submitit's handler: checkpoint(), requeue, exit
        stop = StopRequest()
        try:
            with stop:  # from here on a signal only asks the job to stop where nothing is half written
                return self.work(stop, space_path, lab_dir, storage)
        except Preempted:
            if signal.SIGUSR2 in stop.received and callable(requeue):
                requeue(signal.SIGUSR2, None)
            # SIGTERM: preemption sends USR2 right after it (submitit's handler, back in place, then requeues and
            # exits); scancel sends none, so the job ends and its trial stays RUNNING for the heartbeat's retry
            time.sleep(USR2_AFTER_TERM_S)
            raise

    def work(self, stop: StopRequest, space_path: str, lab_dir: str, storage: str | None) -> dict:
        world = join_process_group()
        if submitit.JobEnvironment().global_rank > 0:
            return follow(stop)
        space = load_space(space_path, storage)
        identity = job_identity()
        study = open_study(space, Path(lab_dir), worker_seed=os.getpid())
        objective = Objective(space, Path(lab_dir), identity["slurm_stdout"], {**identity, "devices": world}, stop,
                              announce if world > 1 else None)
        target = StopAt(target_trials(space, study), space.sampler["name"] in ENUMERATED)
        ran = 0
        for running in own_running_trials(study, identity["slurm_job"]):
            try:
                run_one(study, objective, trial_of(study, running))
                ran += 1
            except optuna.exceptions.UpdateFinishedTrialError:  # e.g. failed and retried elsewhere meanwhile
                print(f"trial {storage_of(study).get_trial(running).number} was finished by another worker while this "
                      "job was requeued; going on with the study", flush=True)
        while not (done := target.reached(study)) and not stop.requested:
            run_one(study, objective, study.ask())
            ran += 1
        if world > 1:
            broadcast(None)  # the study is done, or this job stops: release the other ranks
        if not done:  # the signal came between trials: stop before starting another
            raise Preempted(f"stopped between trials after {ran}")
        return {"trials": ran, **identity}
