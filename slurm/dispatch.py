"""Submit a sweep as a job array of workers, watch its jobs, cancel them. Executors come from submitit,
chosen by the profile's `executor` (slurm | local | debug): the same code path on a laptop and a cluster."""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import optuna
import submitit
from optuna.trial import TrialState

from lclab.errors import ConfigError
from lclab.search_space.space import Space
from lclab.search_space.recovery import fail_and_retry
from lclab.search_space.study import open_study, requeue_crashed

from .profiles import ClusterProfile
from .worker import SweepJob
from lclab.trials.db import open_storage, storage_url

FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL",
            "DEADLINE"}
SACCT_MIN_INTERVAL_S = 5.0  # watchers poll sacct at most this often, one batched call for every job


def make_executor(profile: ClusterProfile, folder: Path, name: str) -> submitit.Executor:
    if profile.executor == "slurm" and shutil.which("srun") is None:  # submitit's own test of a Slurm machine
        raise ConfigError("--cluster", f"profile '{profile.name}' submits to Slurm, but this machine has no Slurm "
                          "client (srun is not on PATH)", "start the sweep on a login node of the cluster, or run its "
                          "workers on this machine with --cluster local")
    executor = submitit.AutoExecutor(folder=folder, cluster=profile.executor, slurm_max_num_timeout=profile.max_requeues)
    params = {"name": f"lclab-{name}", "timeout_min": profile.time_min, "nodes": profile.nodes,
              "tasks_per_node": profile.tasks_per_node, "cpus_per_task": profile.cpus_per_task,
              "gpus_per_node": profile.gpus_per_node}
    if profile.mem_gb is not None:
        params["mem_gb"] = profile.mem_gb
    slurm = {"slurm_partition": profile.partition, "slurm_account": profile.account, "slurm_qos": profile.qos,
             "slurm_constraint": profile.constraint, "slurm_array_parallelism": profile.array_parallelism,
             "slurm_setup": profile.setup or None, "slurm_signal_delay_s": profile.signal_delay_s}
    executor.update_parameters(**params, **{k: v for k, v in slurm.items() if v is not None})
    return executor


# what sbatch says when the job itself asks for something the cluster will not give
_PROFILE_WORDS = ("partition", "account", "qos", "node configuration", "policy", "time limit", "gres", "memory")


def submission_fix(sbatch_error: str) -> str:
    """The fix for a refused submission: the profile's request, or (no controller answered: sbatch found no
    configuration or could not reach it) the machine the sweep was started on."""
    if any(word in sbatch_error.lower() for word in _PROFILE_WORDS):
        return "fix partition / account / qos / limits in the cluster profile"
    return ("no Slurm controller answered here: start the sweep on a login node of the cluster (where `sinfo` "
            "answers), or run its workers on this machine with --cluster local")


def submit(space: Space, lab_dir: Path, profile: ClusterProfile, jobs: int, threads: int,
           retry_failed: bool = False) -> list[submitit.Job]:
    """Create the study (once, here: concurrent creation races) and queue again the points whose trials crashed
    (`requeue_crashed`), then submit `jobs` workers as one array."""
    lab_dir = lab_dir.resolve()
    folder = lab_dir / profile.log_dir / space.name / "%j"
    executor = make_executor(profile, folder, space.name)  # first: a machine without Slurm is refused before the study
    study = open_study(space, lab_dir)
    requeue_crashed(study, space, retry_failed)
    source = str(Path(space.source).resolve())
    try:
        submitted = executor.map_array(SweepJob(), [source] * jobs, [str(lab_dir)] * jobs, [threads] * jobs,
                                       [space.storage] * jobs)
    except (subprocess.CalledProcessError, submitit.core.utils.FailedJobError, submitit.core.utils.FailedSubmissionError) as err:
        message = " ".join(str(err).split())  # submitit carries sbatch's own stderr
        raise ConfigError("--cluster", f"Slurm refused the job array: {message[:400]}", submission_fix(message)) from None
    record = [{"job_id": j.job_id, "executor": profile.executor, "folder": str(folder), "submitted": time.time()}
              for j in submitted]
    study.set_user_attr("slurm_jobs", study.user_attrs.get("slurm_jobs", []) + record)
    return submitted


def _slurm(command: list[str], fix: str, harmless: tuple[str, ...] = ()) -> str:
    """stdout of a Slurm client command; a machine without the client, or a command that fails, is one error.
    `harmless`: error lines that, when they are all there is, do not count as a failure."""
    try:
        out = subprocess.run(command, capture_output=True, text=True)
    except FileNotFoundError:
        raise ConfigError(command[0], f"Slurm's {command[0]} is not on this machine's PATH",
                          "run this on a login node of the cluster the study's jobs were submitted to") from None
    errors = [line for line in out.stderr.splitlines() if line.strip()]
    if out.returncode != 0 and not (harmless and errors and all(any(h in e.lower() for h in harmless) for e in errors)):
        raise ConfigError(command[0], f"{command[0]} failed: {' '.join(out.stderr.split())[:300]}", fix)
    return out.stdout


def sacct(job_ids: list[str]) -> dict[str, dict]:
    """One batched sacct call for all jobs (array tasks expanded): {job id: {state, exit, node, elapsed, reason}}."""
    masters = sorted({j.split("_")[0] for j in job_ids})
    if not masters:
        return {}
    out = _slurm(["sacct", "-X", "-n", "-P", "-j", ",".join(masters), "-o", "JobID,State,ExitCode,NodeList,Elapsed,Reason"],
                 "Slurm accounting (slurmdbd) must be running: lclab needs it to see what happened to a job")
    rows = {}
    for line in out.splitlines():
        job, state, code, node, elapsed, reason = (line.split("|") + [""] * 6)[:6]
        rows[job] = {"state": state.split()[0] if state else "UNKNOWN", "exit": code, "node": node, "elapsed": elapsed,
                     "reason": reason}
    return rows


class Watcher:
    """Rate-limited job states: at most one sacct call per SACCT_MIN_INTERVAL_S, whatever the number of jobs."""

    def __init__(self):
        self._at, self._rows = 0.0, {}

    def states(self, job_ids: list[str]) -> dict[str, dict]:
        if time.monotonic() - self._at >= SACCT_MIN_INTERVAL_S:
            self._rows, self._at = sacct(job_ids), time.monotonic()
        return self._rows


def state_of(rows: dict, job_id: str) -> dict:
    if job_id in rows:
        return rows[job_id]
    master, _, index = job_id.partition("_")
    pending = next((r for k, r in rows.items() if k.startswith(f"{master}_[")), None)  # a pending array: 12_[0-3]
    return pending or {"state": "UNKNOWN", "exit": "", "node": "", "elapsed": "", "reason": ""}


def _tail_error(path: Path) -> str:
    if not path.is_file():
        return ""
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line or "error" in line or "Exception" in line]
    return (errors or lines or [""])[-1][:300]


def job_table(study: optuna.Study, rows: dict | None = None) -> list[dict]:
    """Every job of the study: Slurm state, node, the trial it is running, and for a failed job its error and log."""
    jobs = study.user_attrs.get("slurm_jobs", [])
    slurm_ids = [j["job_id"] for j in jobs if j["executor"] == "slurm"]
    rows = sacct(slurm_ids) if rows is None else rows
    running = {t.user_attrs.get("slurm_job"): t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    table = []
    for j in jobs:
        info = state_of(rows, j["job_id"]) if j["executor"] == "slurm" else {"state": "LOCAL", "exit": "", "node": "",
                                                                           "elapsed": "", "reason": ""}
        log = submitit.core.utils.JobPaths(j["folder"], job_id=j["job_id"], task_id=0).stderr
        failed = info["state"] not in ("COMPLETED", "RUNNING", "PENDING", "REQUEUED", "LOCAL", "UNKNOWN")
        table.append({"job": j["job_id"], "state": info["state"], "exit": info["exit"], "node": info["node"],
                      "elapsed": info["elapsed"], "trial": running.get(j["job_id"], ""),
                      "error": (_tail_error(log) or info["reason"]) if failed else "", "log": str(log)})
    return table


def cancel(study: optuna.Study) -> tuple[list[str], list[int]]:
    """scancel every unfinished job of the study (one call), then fail their running trials and queue retries
    that resume from the trials' checkpoints with their intermediate values."""
    rows = job_table(study)
    live = [r["job"] for r in rows if r["state"] not in FINISHED]
    if live:  # its trials are queued again only once their jobs are surely stopped: else two workers would train them
        _slurm(["scancel", *live], "no trial was queued again; cancel the jobs with scancel yourself (or ask who owns "
                                   "them), then run lclab cancel again",
               harmless=("already completing or completed", "invalid job id"))  # ended since sacct saw it: stopped
    retried = []
    jobs = {r["job"] for r in rows}
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get("slurm_job") in jobs:
            fail_and_retry(study, t, "cancelled")
            retried.append(t.number)
    return live, retried


def load(space_name: str, lab_dir: Path, storage: str | None) -> optuna.Study:
    store = open_storage(storage_url(storage, lab_dir), must_exist=True)
    try:
        return optuna.load_study(study_name=space_name, storage=store)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(store, include_best_trial=False)]
        raise ConfigError("study", f"no study named '{space_name}'", f"use one of {names}") from None
