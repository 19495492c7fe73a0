"""Against a real one-node Slurm with accounting (slurm/local_cluster/up.sh; `.ci/run` starts it): job arrays,
preemption and time-limit requeue resuming the same trial, scontrol requeue, scancel, crashes, refusals.
No mocking of submitit or of Slurm commands."""
import dataclasses
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import optuna
import pytest
import torch
import yaml

from lclab.search_space.space import load_space
from lclab.slurm.dispatch import submit
from lclab.slurm.profiles import load_profile
from lclab.testing import MINI_BASE, mini_space
from tests.slurm.test_ddp import ddp_sweep
from tests.services import unavailable
from lclab.trials import config_from_dict, run_trial
from lclab.trials.db import load_frame, open_storage, storage_url

ROOT = Path(__file__).parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slurm():
    if not shutil.which("sinfo") or not os.environ.get("SLURM_CONF"):
        unavailable("no Slurm cluster: run `slurm/local_cluster/up.sh` and export SLURM_CONF")
    states = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout.split()
    if not set(states) & {"idle", "mixed", "allocated"}:
        unavailable(f"Slurm has no usable node (sinfo: {states})")
    return load_profile("local_slurm")


@pytest.fixture(autouse=True)
def fast_heartbeat(monkeypatch):
    # jobs inherit the environment: a dead worker's trial is stale after 3 s instead of 30
    monkeypatch.setenv("LCLAB_HEARTBEAT_S", "1")
    monkeypatch.setenv("LCLAB_GRACE_S", "3")


def lclab(*args):
    return subprocess.run([sys.executable, "-m", "lclab", *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "COLUMNS": "250"})


def wait_for(predicate, timeout=240, every=0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s")


VAL_EVERY = 500
LONG_BASE = {**MINI_BASE, "train": {**MINI_BASE["train"], "checkpoint_every": 50, "val_every": VAL_EVERY}}
TOKENS_PER_STEP = 8 * 32  # mini: batch 8, 16 + 16 tokens
LONG_STEPS = 4 * VAL_EVERY
VALIDATED_AT = [VAL_EVERY * TOKENS_PER_STEP * k for k in range(1, LONG_STEPS // VAL_EVERY + 1)]  # a long trial's reports


def long_space(tmp_path, name="long", steps=LONG_STEPS):
    """One configuration, one seed, long enough to be interrupted mid-trial; median pruner for intermediate values."""
    return mini_space(tmp_path, name=name, base=LONG_BASE, axes={"ratio": {"values": [4]}}, seeds=[0], n_trials=1,
                      budget={"steps": steps}, pruner={"name": "median", "n_startup_trials": 100})


def study_of(space_path, lab):
    space = load_space(space_path)
    return optuna.load_study(study_name=space.name, storage=open_storage(storage_url(space.storage, lab)))


def training_reported(study, lab, name):
    """Mid-trial: the first validation was reported (so intermediate values exist) and a checkpoint is on disk."""
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    return bool(running) and bool(running[0].intermediate_values) and any((lab / "runs" / name).glob("*/checkpoints/last.ckpt"))


def start_long_trial(profile, tmp_path):
    """Submit one worker on a long single-trial space and return once that trial is training mid-way."""
    space_path = long_space(tmp_path)
    lab = tmp_path / "lab"
    [job] = submit(load_space(space_path), lab, profile, jobs=1, threads=1)
    study = study_of(space_path, lab)
    wait_for(lambda: training_reported(study, lab, "long"))
    return space_path, lab, job, study


def _run_uninterrupted(config: dict, output_dir: str) -> dict:
    torch.set_num_threads(1)  # as the job's worker (--threads 1)
    return run_trial(config_from_dict({**config, "output_dir": output_dir})).metrics


@pytest.fixture
def meanwhile():
    """A fresh process for a reference run while the job trains: the job takes one core and this test none, so the
    test waits for the longer of the two instead of their sum."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


def uninterrupted_metrics(meanwhile, tmp_path, study) -> Future:
    """The same trial, run from start to end without an interruption (started now, in the `meanwhile` process)."""
    return meanwhile.submit(_run_uninterrupted, study.trials[0].user_attrs["config"], str(tmp_path / "reference"))


def test_a_sweep_runs_as_a_job_array_and_every_trial_records_its_job(slurm, tmp_path):
    space = mini_space(tmp_path, budget={"steps": 4})
    r = lclab("sweep", space, "--cluster", "local_slurm", "--jobs", "2", "--threads", "1", "--wait", "--lab", tmp_path / "lab")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    frame = load_frame(storage_url(None, tmp_path / "lab"), ["mini"])
    assert (frame.state == "COMPLETE").sum() == 8
    assert frame.slurm_job_id.notna().all() and frame.node.notna().all()
    assert frame.slurm_stdout.map(lambda p: Path(p).is_file()).all()
    jobs = lclab("jobs", "mini", "--lab", tmp_path / "lab")
    assert jobs.returncode == 0 and jobs.stdout.count("COMPLETED") == 2, jobs.stdout


def test_a_ddp_trial_over_two_slurm_tasks_is_preempted_and_resumes_the_same_trial_bit_identically(slurm, tmp_path):
    profile = dataclasses.replace(slurm, tasks_per_node=2)
    space_path = long_space(tmp_path)
    lab = tmp_path / "lab"
    [job] = submit(load_space(space_path), lab, profile, jobs=1, threads=1)
    study = study_of(space_path, lab)
    wait_for(lambda: training_reported(study, lab, "long"))
    job._interrupt()  # Slurm signals every task; the ranks agree on the step to stop at
    wait_for(lambda: study.get_trials(deepcopy=False)[0].state.is_finished())
    [trial] = study.get_trials(deepcopy=False)  # rank 1 never touched the study
    assert trial.state == optuna.trial.TrialState.COMPLETE and trial.user_attrs["devices"] == 2
    assert trial.user_attrs["preempted"] == 1 and trial.user_attrs["slurm_restarts"] == 1
    assert sorted(trial.intermediate_values) == VALIDATED_AT
    metrics = trial.user_attrs["metrics"]
    assert metrics["meta/resumed_from_step"] > 0 and metrics["sys/devices"] == 2
    (tmp_path / "reference").mkdir()
    [reference] = ddp_sweep(tmp_path / "reference", space_path).to_dict("records")  # the same DDP trial, uninterrupted
    for key in ("val/loss_compressed", "val/loss_full", "val/recon_acc", "train/steps"):
        assert metrics[key] == reference[key], key


@pytest.mark.parametrize("timeout", [False, True], ids=["preempted", "timed_out"])
def test_preemption_requeues_the_job_and_resumes_the_same_trial_bit_identically(slurm, tmp_path, timeout, meanwhile):
    space_path, lab, job, study = start_long_trial(slurm, tmp_path)
    reference = uninterrupted_metrics(meanwhile, tmp_path, study)
    job._interrupt(timeout=timeout)  # what Slurm sends before preemption / the time limit (USR2)
    wait_for(lambda: study.get_trials(deepcopy=False)[0].state.is_finished())
    [trial] = study.get_trials(deepcopy=False)
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert trial.user_attrs["preempted"] == 1 and trial.user_attrs["slurm_restarts"] == 1
    assert sorted(trial.intermediate_values) == VALIDATED_AT  # kept across the requeue
    metrics = trial.user_attrs["metrics"]
    assert metrics["meta/resumed_from_step"] > 0
    reference = reference.result(timeout=600)
    for key in ("val/loss_compressed", "val/loss_full", "val/recon_acc", "train/steps"):
        assert metrics[key] == reference[key], key  # bit-identical on CPU


def test_scontrol_requeue_resumes_the_same_trial_from_its_checkpoint(slurm, tmp_path):
    space_path, lab, job, study = start_long_trial(slurm, tmp_path)
    subprocess.run(["scontrol", "requeue", job.job_id], check=True)  # no signal: the job restarts from scratch
    wait_for(lambda: study.get_trials(deepcopy=False)[0].state.is_finished())
    [trial] = study.get_trials(deepcopy=False)
    assert trial.state == optuna.trial.TrialState.COMPLETE and trial.number == 0
    assert trial.user_attrs["metrics"]["meta/resumed_from_step"] > 0


def test_a_requeued_job_held_pending_past_the_grace_keeps_its_trial_and_resumes_it(slurm, tmp_path):
    """A cluster may keep a requeued job pending far longer than the heartbeat's grace (3 s here): its trial is
    waiting for it, not abandoned. Other workers' stale checks (here, this test's own) leave it alone, and the job,
    once released, resumes the same trial from its checkpoint."""
    space_path, lab, job, study = start_long_trial(slurm, tmp_path)
    subprocess.run(["scontrol", "requeuehold", job.job_id], check=True)  # requeued, then held in the queue
    wait_for(lambda: "PENDING" in subprocess.run(["squeue", "-h", "-j", job.job_id, "-o", "%T"], capture_output=True,
                                                 text=True).stdout)
    time.sleep(8)  # well past the grace: the trial's heartbeat is stale
    study._storage._backend.grace_period = 3  # the jobs' grace (this process read LCLAB_GRACE_S before the fixture)
    optuna.storages.fail_stale_trials(study)  # what every other worker runs before it starts a trial
    assert [t.state.name for t in study.get_trials(deepcopy=False)] == ["RUNNING"]
    subprocess.run(["scontrol", "release", job.job_id], check=True)
    wait_for(lambda: study.get_trials(deepcopy=False)[0].state.is_finished())
    [trial] = study.get_trials(deepcopy=False)  # the same trial, never failed, never retried
    assert trial.state == optuna.trial.TrialState.COMPLETE and trial.user_attrs["slurm_restarts"] >= 1
    assert trial.user_attrs["metrics"]["meta/resumed_from_step"] > 0


@pytest.mark.parametrize("how", ["lclab_cancel", "scancel"])
def test_a_cancelled_job_leaves_a_trial_that_a_resumed_sweep_completes(slurm, tmp_path, how):
    space_path, lab, job, study = start_long_trial(slurm, tmp_path)
    if how == "lclab_cancel":
        r = lclab("cancel", "long", "--lab", lab)
        assert r.returncode == 0 and "trials queued to resume: 0" in r.stdout, r.stdout + r.stderr
    else:
        subprocess.run(["scancel", job.job_id], check=True)  # the heartbeat notices the dead worker
    wait_for(lambda: subprocess.run(["sacct", "-X", "-n", "-j", job.job_id, "-o", "State"], capture_output=True,
                                    text=True).stdout.strip().startswith("CANCELLED"))
    r = lclab("sweep", space_path, "--cluster", "local_slurm", "--jobs", "1", "--threads", "1", "--wait", "--lab", lab)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    done = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 1 and done[0].user_attrs["metrics"]["meta/resumed_from_step"] > 0
    assert VAL_EVERY * TOKENS_PER_STEP in done[0].intermediate_values  # reported before the cancel, kept by the retry


def test_a_crashing_job_surfaces_as_a_failed_trial_with_its_log(slurm, tmp_path):
    garbage = tmp_path / "corrupt.parquet"
    garbage.write_bytes(b"this is not parquet" * 100)
    base = {**MINI_BASE, "data": {"source": "files", "path": [str(garbage)], "tokenizer": "byte", "context_len": 16,
                                  "text_len": 16, "val_examples": 16}}
    space_path = mini_space(tmp_path, name="crash", base=base, axes={"ratio": {"values": [4]}}, seeds=[0], n_trials=1)
    r = lclab("sweep", space_path, "--cluster", "local_slurm", "--jobs", "1", "--threads", "1", "--wait", "--lab", tmp_path / "lab")
    [trial] = study_of(space_path, tmp_path / "lab").get_trials(deepcopy=False)
    assert trial.state == optuna.trial.TrialState.FAIL and trial.user_attrs["fail_reason"]
    assert Path(trial.user_attrs["slurm_stderr"]).is_file()
    jobs = lclab("jobs", "crash", "--lab", tmp_path / "lab")
    assert "FAILED" in jobs.stdout and "_log.err" in jobs.stdout, jobs.stdout


def test_a_profile_with_a_wrong_partition_is_refused_with_slurms_reason(slurm, tmp_path):
    profile = tmp_path / "bad.yaml"
    profile.write_text(yaml.safe_dump({"name": "bad", "partition": "no_such_partition", "time_min": 5, "signal_delay_s": 10}))
    r = lclab("sweep", mini_space(tmp_path), "--cluster", profile, "--lab", tmp_path / "lab")
    assert r.returncode == 2 and "Invalid partition name specified" in r.stderr and "Traceback" not in r.stderr
    assert "fix partition / account / qos" in " ".join(r.stderr.split())


def test_asha_prunes_across_slurm_jobs_through_the_shared_storage(slurm, tmp_path):
    lrs = [3.0e-3, 1.0e-7, 3.0e-8, 1.0e-8, 3.0e-9]  # the first learns, the rest barely move
    space = mini_space(tmp_path, name="asha", seeds=[0], budget={"steps": 20}, n_trials=5,
                       pruner={"name": "asha", "min_resource": 1280, "reduction_factor": 2},
                       axes={"lr_encoder": {"values": lrs}, "lr_decoder": {"values": [1.0e-3]}},
                       base={**MINI_BASE, "train": {**MINI_BASE["train"], "val_every": 5}})
    r = lclab("sweep", space, "--cluster", "local_slurm", "--jobs", "2", "--threads", "1", "--wait", "--lab", tmp_path / "lab")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    frame = load_frame(storage_url(None, tmp_path / "lab"), ["asha"])
    assert (frame.state == "PRUNED").sum() >= 2 and frame.slurm_job_id.notna().all()
    assert frame.loc[frame.value.idxmin(), "param.lr_encoder"] == 3.0e-3
    assert frame[frame["param.lr_encoder"] == 3.0e-3].state.item() == "COMPLETE"


def test_a_job_reaching_its_real_time_limit_is_requeued_and_resumes_its_trial(slurm, tmp_path, monkeypatch):
    monkeypatch.setenv("LCLAB_GRACE_S", "30")  # longer than a requeue (~7 s): the requeued job resumes the trial itself
    # Slurm sends USR2 `signal_delay_s` before the 2-minute limit on a 30 s timer: measured, the first run is warned
    # 28-46 s in (1,881 steps by then at 10 ms/step, 2,636 at 17 ms/step) and every requeued run at the next tick,
    # ~20 s in, after ~1,000 more steps. 10000 steps outlast a first run warned late (46 s) at 2.6x the faster pace;
    # 30 requeues are allowed because at 12000 steps the slower run used all 10 that were, with 184 steps left
    profile = tmp_path / "short.yaml"
    profile.write_text(yaml.safe_dump({"name": "short", "time_min": 2, "signal_delay_s": 70, "cpus_per_task": 1,
                                       "max_requeues": 30}))
    space_path = long_space(tmp_path, steps=10000)
    lab = tmp_path / "lab"
    r = lclab("sweep", space_path, "--cluster", profile, "--jobs", "1", "--threads", "1", "--wait", "--lab", lab)
    # the job itself may end FAILED: a requeued run is warned again ~20 s in, which can hit it while it exits
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    [trial] = study_of(space_path, lab).get_trials(deepcopy=False)
    assert trial.state == optuna.trial.TrialState.COMPLETE and trial.user_attrs["slurm_restarts"] >= 1
    assert trial.user_attrs["preempted"] >= 1 and trial.user_attrs["metrics"]["meta/resumed_from_step"] > 0
