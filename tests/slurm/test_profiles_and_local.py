"""Cluster profiles are checked before submission; `--cluster local` runs the same worker code through
submitit's local executor (no Slurm needed)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from lclab.errors import ConfigError
from lclab.slurm.profiles import load_profile
from lclab.testing import mini_space
from lclab.trials.db import load_frame, storage_url
from tests.services import unavailable

ROOT = Path(__file__).parents[2]


def lclab(*args):
    return subprocess.run([sys.executable, "-m", "lclab", *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "COLUMNS": "250"})


def test_shipped_profiles_load():
    assert load_profile("example_cluster").partition == "gpu"
    assert load_profile(ROOT / "slurm/profiles/local_slurm.yaml").executor == "slurm"
    assert load_profile("local").executor == "local"


@pytest.mark.parametrize("body,message", [
    ({"partiton": "gpu"}, "did you mean 'partition'"),
    ({"time_min": 0}, "time_min"),
    ({"gpus_per_node": -1}, "must not be negative"),
    ({"executor": "pbs"}, "executor"),
    ({"time_min": 1, "signal_delay_s": 120}, "not shorter than time_min"),
    ({"gpus_per_node": 4, "tasks_per_node": 2}, "one task per GPU"),
    ({"setup": "module load cuda"}, "setup"),
])
def test_bad_profiles_are_refused_before_submission(tmp_path, body, message):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(body))
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    assert message in err.value.render() and str(path) in err.value.render()


def test_unknown_profile_name_lists_the_known_ones():
    r = lclab("sweep", ROOT / "search_space/presets/quickstart.yaml", "--cluster", "nowhere")
    assert r.returncode == 2 and "no cluster profile 'nowhere'" in r.stderr and "example_cluster" in r.stderr


def test_a_slurm_profile_on_a_machine_without_slurm_is_one_error_before_the_study(tmp_path):
    # a laptop or a compute node without the Slurm client: was submitit's RuntimeError traceback, after the study was made
    r = subprocess.run([sys.executable, "-m", "lclab", "sweep", mini_space(tmp_path), "--cluster", "example_cluster",
                        "--lab", tmp_path / "lab"], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "COLUMNS": "250", "PATH": str(Path(sys.executable).parent)})
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "profile 'example_cluster' submits to Slurm, but this machine has no Slurm client" in r.stderr
    assert "--cluster local" in r.stderr and not (tmp_path / "lab").exists()


def test_jobs_and_cancel_on_a_machine_without_slurm_name_it_and_requeue_nothing(tmp_path):
    # a study whose worker runs in Slurm job 4242_0, looked at from a machine without the Slurm client: was a
    # FileNotFoundError traceback from sacct
    (tmp_path / "lab").mkdir()
    url = storage_url(None, tmp_path / "lab")
    study = optuna.create_study(study_name="s", storage=url)
    study.set_user_attr("slurm_jobs", [{"job_id": "4242_0", "executor": "slurm", "folder": str(tmp_path / "%j"),
                                        "submitted": 0.0}])
    trial = study.ask()
    study._storage.set_trial_user_attr(trial._trial_id, "slurm_job", "4242_0")
    for command in ("jobs", "cancel"):
        r = subprocess.run([sys.executable, "-m", "lclab", command, "s", "--lab", tmp_path / "lab"], capture_output=True,
                           text=True, cwd=ROOT, env={**os.environ, "COLUMNS": "250", "PATH": str(Path(sys.executable).parent)})
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
        assert "Slurm's sacct is not on this machine's PATH" in r.stderr and "login node" in r.stderr
    [after] = optuna.load_study(study_name="s", storage=url).get_trials(deepcopy=False)
    assert after.state == optuna.trial.TrialState.RUNNING  # not failed and queued again while its job may still run


def test_a_submission_no_controller_answers_says_where_to_run_not_what_to_fix_in_the_profile(tmp_path):
    """sbatch that finds no usable Slurm configuration, as on a machine that is not part of the cluster (the
    message was 'fix partition / account / qos' of a profile with nothing wrong in it)."""
    if shutil.which("sbatch") is None:
        unavailable("no sbatch on PATH (the Slurm client; CI installs it)")
    (tmp_path / "slurm.conf").write_text("")  # sbatch refuses at once: 'ClusterName needs to be specified'
    profile = tmp_path / "p.yaml"
    profile.write_text(yaml.safe_dump({"name": "p", "partition": "gpu", "time_min": 5, "signal_delay_s": 10}))
    r = subprocess.run([sys.executable, "-m", "lclab", "sweep", mini_space(tmp_path), "--cluster", profile,
                        "--lab", tmp_path / "lab"], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "COLUMNS": "250", "SLURM_CONF": str(tmp_path / "slurm.conf")})
    message = " ".join(r.stderr.split())
    assert r.returncode == 2 and "Traceback" not in r.stderr and "Slurm refused the job array" in message, message
    assert "no Slurm controller answered here" in message and "partition" not in message.split("Fix:")[1]


@pytest.mark.parametrize("executor,jobs", [("local", 2), ("debug", 1)])
def test_cluster_local_and_debug_run_the_sweep_through_submitit_workers(tmp_path, executor, jobs):
    space = mini_space(tmp_path, budget={"steps": 4})
    r = lclab("sweep", space, "--cluster", executor, "--jobs", jobs, "--threads", "1", "--lab", tmp_path / "lab")
    assert r.returncode == 0, r.stderr[-2000:]
    frame = load_frame(storage_url(None, tmp_path / "lab"), ["mini"])
    assert (frame.state == "COMPLETE").sum() == 8
    assert frame.slurm_job.notna().all()
    if executor == "local":  # the debug executor runs in-process, without log files
        assert frame.slurm_stdout.map(lambda p: Path(p).is_file()).all()
