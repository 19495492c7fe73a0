"""Which RUNNING trials are truly abandoned. A stale heartbeat alone does not say so:

- a trial whose Slurm job is waiting to run again (PENDING, REQUEUED, held) belongs to that job, which resumes it
  from its checkpoint as the same trial, however long the cluster keeps it pending: no other worker fails it;
- just after an outage of the database server, every live worker's heartbeat is old (none could land): no trial is
  failed until the grace has passed again.

Every stale check goes through here: Optuna's own `fail_stale_trials` on SQL storages (the storage's stale-trial
query is filtered), and lclab's journal heartbeat (`lclab.search_space.recovery.fail_stale`)."""
from __future__ import annotations

import functools
import subprocess
import sys

import optuna

from .optuna_internals import STALE_TRIAL_IDS

# Slurm job states in which the job will still run (again): its trial is waiting for it, not abandoned
WILL_RUN = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RUNNING", "CONFIGURING", "COMPLETING",
            "RESIZING", "SUSPENDED", "SIGNALING", "STAGE_OUT"}


def job_states(jobs: list[str]) -> dict[str, str]:
    """Slurm state of each job id (`123` or an array task `123_4`), in one `sacct` call; {} where no Slurm
    accounting answers (not on a cluster, or sacct failing), so the heartbeat's grace decides alone."""
    if not jobs:
        return {}
    try:
        out = subprocess.run(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(sorted(set(jobs)))],
                             capture_output=True, text=True, timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return {}
    if out.returncode != 0:
        print(f"[lclab] sacct could not tell the state of jobs {sorted(set(jobs))}: {out.stderr.strip()[:200]}",
              file=sys.stderr, flush=True)
        return {}
    states = {}
    for line in out.stdout.splitlines():
        job, _, state = line.partition("|")
        states[job.strip()] = state.split()[0] if state.split() else ""  # "CANCELLED by 0" -> CANCELLED
    return states


def abandoned(trials: dict[int, dict]) -> list[int]:
    """Of stale trials (storage id -> user attributes), those no Slurm job will come back to."""
    jobs = {tid: str(attrs["slurm_job"]) for tid, attrs in trials.items() if attrs.get("slurm_job")}
    states = job_states(list(jobs.values()))
    return [tid for tid in trials if states.get(jobs.get(tid, ""), "") not in WILL_RUN]


def filter_stale_trials(storage: optuna.storages.BaseStorage, outages=None) -> None:
    """Make `storage`'s stale-trial query (what Optuna's `fail_stale_trials` asks) return only abandoned trials,
    and none within the grace after an outage this process saw (`outages`: `lclab.trials.outage.Outages`)."""
    query = getattr(storage, STALE_TRIAL_IDS)

    @functools.wraps(query)
    def stale(study_id: int) -> list[int]:
        if outages is not None and outages.recent():
            return []
        ids = query(study_id)
        return abandoned({tid: storage.get_trial_user_attrs(tid) for tid in ids}) if ids else []

    setattr(storage, STALE_TRIAL_IDS, stale)
