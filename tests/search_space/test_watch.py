"""Watching a sweep: the live display's ingredients (progress of running trials, an ETA from trial durations only,
infeasible points named as such) and worker logs that show life while a trial runs."""
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState, create_trial

from lclab.search_space.study import counts, eta_s
from lclab.testing import MINI_BASE, mini_space
from lclab.trials.db import load_frame, storage_url

ROOT = Path(__file__).parents[2]


def lclab(*args, env=None, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "lclab", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "COLUMNS": "250", **(env or {})}, timeout=600)


def test_a_running_trial_shows_its_progress_in_the_worker_log_and_the_study(tmp_path):
    base = {**MINI_BASE, "train": {**MINI_BASE["train"], "log_every": 2, "checkpoint_every": 50}}
    space = mini_space(tmp_path, seeds=[0], budget={"steps": 3000}, base=base, axes={"ratio": {"values": [4]}})
    lab = tmp_path / "lab"
    sweep = subprocess.Popen([sys.executable, "-m", "lclab", "sweep", str(space), "--lab", str(lab)], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    seen, deadline = {}, time.time() + 240
    try:
        while not seen and time.time() < deadline and sweep.poll() is None:
            time.sleep(1)
            logs = list((lab / "logs" / "mini").glob("*.log"))
            if not logs:  # workers log once the parent has created the study: do not race its schema creation
                continue
            study = optuna.load_study(study_name="mini", storage=storage_url(None, lab))
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                p, text = t.user_attrs.get("progress"), logs[0].read_text() if logs else ""
                steps = [line for line in text.splitlines() if line.startswith("[train] step")]
                if p and p["step"] > 0 and len(steps) >= 2:
                    seen.update(progress=p, lines=steps, log=text)
    finally:
        os.killpg(sweep.pid, 2)  # Ctrl-C, as a user stops it: the trial checkpoints and is queued again
        sweep.wait(timeout=120)
    assert seen, f"no progress seen while the trial ran: {sweep.stderr.read().decode()[-2000:]}"
    p = seen["progress"]
    assert p["phase"] == "train" and 0 < p["step"] < p["steps"] == 3000 and p["tokens"] == p["step"] * 8 * 32
    assert p["loss"] is not None and p["loss"] > 0
    assert "loss" in seen["lines"][-1] and "tokens" in seen["lines"][-1]
    assert "srun" not in seen["log"]


def test_the_eta_counts_trial_durations_only():
    study = optuna.create_study()
    trained = [create_trial(value=1.0, user_attrs={"metrics": {"sys/wall_s": 10.0}}) for _ in range(2)]
    # a duplicate settled by an earlier trial costs nothing and must not count as a duration
    copied = create_trial(value=1.0, user_attrs={"metrics": {"sys/wall_s": 0.01}, "duplicate_of": 0})
    study.add_trials([*trained, copied])
    assert eta_s(study, target=6, workers=1) == 30.0  # 3 trials left x 10 s
    assert eta_s(study, target=6, workers=3) == 10.0
    assert eta_s(optuna.create_study(), target=6, workers=1) is None  # nothing measured yet: no guess


def test_an_infeasible_grid_point_is_shown_as_infeasible_with_its_constraint(tmp_path):
    space = mini_space(tmp_path, seeds=[0, 1], budget={"steps": 2}, axes={"ratio": {"values": [4, 5]}})
    out = lclab("sweep", space, "--lab", tmp_path / "lab")
    assert out.returncode == 0, out.stderr
    shown = " ".join(out.stdout.split())
    assert "infeasible ratio=5: model.encoder.window" in shown and "not divisible by ratio 5" in shown
    assert "2/4 trained, 2 infeasible" in shown
    # in a log (not a terminal) the summary's title starts its own line, not the live table's last one
    assert "sweep mini" in [line.strip() for line in out.stdout.splitlines()], out.stdout
    study = optuna.load_study(study_name="mini", storage=storage_url(None, tmp_path / "lab"))
    c = counts(study)
    assert c["INFEASIBLE"] == 2 and c["PRUNED"] == 0 and c["COMPLETE"] == 2
    frame = load_frame(storage_url(None, tmp_path / "lab"), ["mini"])
    bad = frame[frame["param.ratio"] == 5]
    assert (bad.state == "INFEASIBLE").all() and bad.infeasible.str.contains("not divisible by ratio 5").all()
    trials = lclab("trials", "mini", "--lab", tmp_path / "lab", "--columns", "number,ratio,state,infeasible")
    assert "INFEASIBLE" in trials.stdout
    report = lclab("report", "mini", "--lab", tmp_path / "lab", "-o", tmp_path / "rep")
    assert report.returncode == 0, report.stderr
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "2 points are infeasible and were never trained: ratio = 5" in md and "INFEASIBLE" in md


def test_lclab_train_counts_steps_and_tokens_and_is_silent_about_srun(tmp_path):
    fake = tmp_path / "bin" / "srun"  # every machine lclab targets has Slurm installed
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = {"PATH": f"{fake.parent}:{os.environ['PATH']}"}
    env.pop("SLURM_JOB_ID", None)
    out = lclab("train", ROOT / "configs/trial/tiny.yaml", "--set", "train.steps=4", "--set", "data.val_examples=8",
                "--set", "train.decoder_init=scratch", "--output-dir", tmp_path / "runs", env=env)
    assert out.returncode == 0, out.stderr
    shown = out.stderr + out.stdout  # Lightning's bar writes to stdout
    assert "srun" not in shown
    assert "Epoch" not in shown and "steps: 100%" in shown and "4/4" in shown and "tokens=" in shown


def test_a_fresh_sweep_with_four_workers_trains_its_warm_decoder_once(tmp_path, monkeypatch):
    from lclab.search_space.space import load_space
    from lclab.search_space.local import run_sweep

    monkeypatch.setenv("LCLAB_CACHE", str(tmp_path / "cache"))  # cold: spawned workers inherit it
    base = {**MINI_BASE, "train": {**MINI_BASE["train"], "decoder_init": "warm", "warm_steps": 30}}
    space = load_space(mini_space(tmp_path, seeds=[0], budget={"steps": 2}, base=base))
    run_sweep(space, tmp_path / "lab", workers=4)
    events = (tmp_path / "cache" / "warm").glob("warm-decoder-*/tensorboard/events.out.tfevents.*")
    trainers = {p.name.split(".")[-2] for p in events}  # events.out.tfevents.<time>.<host>.<pid>.<n>
    assert len(trainers) == 1, trainers  # one worker process trained it, the three others waited for it
    assert len(list((tmp_path / "cache" / "warm").glob("decoder-*.pt"))) == 1
    assert not list((tmp_path / "cache" / "warm").glob("*.tmp"))


def test_the_display_lists_running_trials_with_their_progress_and_the_warm_decoder(tmp_path):
    from rich.console import Console

    from lclab.cli import _running_table
    from lclab.search_space.space import load_space

    spec = load_space(mini_space(tmp_path, seeds=[0], budget={"steps": 2}))
    study = optuna.create_study()
    dist = {"ratio": optuna.distributions.CategoricalDistribution([4, 8])}
    training, warming, starting = (study.ask(dist) for _ in range(3))  # the third has not reported yet
    training.set_user_attr("progress", {"phase": "train", "step": 120, "steps": 400, "tokens": 491520, "loss": 4.1676,
                                        "objective": 0.2341, "at": time.time()})
    warming.set_user_attr("progress", {"phase": "warm decoder", "step": 30, "steps": 300, "tokens": 122880,
                                       "loss": 5.01, "objective": None, "at": time.time()})
    console = Console(width=250, record=True)
    for table in _running_table(study, spec):
        console.print(table)
    text = console.export_text()
    assert "120/400" in text and "491,520" in text and "4.168" in text and "0.2341" in text
    assert "warm decoder" in text and "30/300" in text and "starting" in text


def test_an_objective_the_trials_do_not_report_stops_the_sweep_with_its_name(tmp_path):
    # a misspelt metric: before, every point trained and failed as "The value nan is not acceptable", in the logs only
    space = mini_space(tmp_path, seeds=[0], budget={"steps": 2}, axes={"ratio": {"values": [4, 8]}},
                       objectives=[{"metric": "val/los_compressed"}])
    out = subprocess.run([sys.executable, "-m", "lclab", "sweep", str(space), "--lab", str(tmp_path / "lab")], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)  # one log, as 2>&1
    shown = " ".join(out.stdout.split())
    assert out.returncode == 1 and "objective 'val/los_compressed' is not a metric the trials report" in shown, shown
    assert "did you mean 'val/loss_compressed'" in shown
    assert any(line.startswith("sweep failed:") for line in out.stdout.splitlines()), out.stdout  # a line of its own
    study = optuna.load_study(study_name="mini", storage=storage_url(None, tmp_path / "lab"))
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(failed) == 1 and "val/los_compressed" in failed[0].user_attrs["fail_reason"]  # the worker stopped there


def test_an_objective_undefined_for_a_trial_fails_it_with_the_metrics_own_reason(tmp_path):
    # retention is undefined (NaN) until raw context clearly helps: Optuna cannot store NaN, so the trial fails, and the
    # reason must be the metric's own status, not "The value nan is not acceptable"
    space = mini_space(tmp_path, seeds=[0, 1], budget={"steps": 2}, axes={"ratio": {"values": [4]}},
                       objectives=[{"metric": "val/retention", "direction": "maximize"}])
    out = lclab("sweep", space, "--lab", tmp_path / "lab")
    shown = " ".join(out.stdout.split())
    assert "undefined trial(s) 0, 1: objective val/retention is undefined for this trial: undefined:" in shown, shown
    study = optuna.load_study(study_name="mini", storage=storage_url(None, tmp_path / "lab"))
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(failed) == 2 and all(t.user_attrs["metrics"]["val/retention_status"] in t.user_attrs["fail_reason"]
                                    for t in failed)
    # a result of its configuration, like a divergence: the sweep is done, and a re-run trains nothing again
    assert out.returncode == 0 and "2/2 trained" in shown, shown
    again = lclab("sweep", space, "--lab", tmp_path / "lab")
    assert again.returncode == 0 and len(optuna.load_study(study_name="mini", storage=storage_url(None, tmp_path / "lab")).trials) == 2
