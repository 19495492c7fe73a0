"""Multi-process (DDP) trials: a job of several tasks trains each trial over all of them, rank 0 alone talks to
the study. Runs on CPU with gloo through submitit's local executor (tasks_per_node: 2), the same worker code a
Slurm job with several GPUs runs (the real-Slurm version is in test_real_slurm.py)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from lclab.testing import MINI_BASE, mini_space
from lclab.trials import config_from_dict, run_trial
from lclab.trials.db import load_frame, storage_url

ROOT = Path(__file__).parents[2]


def ddp_sweep(tmp_path, space):
    profile = tmp_path / "ddp.yaml"
    profile.write_text(yaml.safe_dump({"name": "ddp", "executor": "local", "tasks_per_node": 2, "cpus_per_task": 1}))
    r = subprocess.run([sys.executable, "-m", "lclab", "sweep", space, "--cluster", profile, "--jobs", "1",
                        "--threads", "1", "--lab", tmp_path / "lab"],
                       capture_output=True, text=True, cwd=ROOT, env={**os.environ, "COLUMNS": "250"}, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return load_frame(storage_url(None, tmp_path / "lab"), [yaml.safe_load(Path(space).read_text())["name"]])


def test_a_ddp_trial_matches_the_same_trial_in_one_process(tmp_path, monkeypatch):
    # a warm decoder too: the ranks train it together the first time, and the reference reuses it from the cache;
    # every mode in the step, its rows split unevenly over the ranks (compressed 3 + 2, full 1 + 1, reconstruct 1 + 0)
    base = {**MINI_BASE, "train": {**MINI_BASE["train"], "decoder_init": "warm", "warm_steps": 6,
                                   "full_context_share": 0.25, "reconstruction_share": 0.125}}
    space = mini_space(tmp_path, base=base, budget={"steps": 6}, seeds=[0], n_trials=2, axes={"ratio": {"values": [4, 8]}})
    frame = ddp_sweep(tmp_path, space)
    assert list(frame.state) == ["COMPLETE", "COMPLETE"]  # one row per trial: the second rank recorded nothing
    assert (frame["sys/devices"] == 2).all() and (frame.devices == 2).all()
    torch.set_num_threads(1)
    # the DDP ranks trained on CPU (2 processes, fewer GPUs than that on a 1-GPU machine): so does the reference
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    for _, row in frame.iterrows():
        resolved = yaml.safe_load(Path(row.run_dir, "config.yaml").read_text())
        cfg = config_from_dict({**resolved, "output_dir": str(tmp_path / "single")})
        single = run_trial(cfg).metrics
        # each rank trained on half of the same global batch: the same run up to the order of float sums
        for key in ("val/loss_compressed", "val/loss_full", "val/recon_acc"):
            assert row[key] == pytest.approx(single[key], rel=1e-5), key
        assert row["train/steps"] == single["train/steps"] == 6
    logs = Path(frame.slurm_stdout.iloc[0]).parent
    assert len(list(logs.glob("*_1_log.err"))) == 1  # the second rank ran


def test_pruning_stops_every_ddp_rank_at_the_same_step(tmp_path):
    lrs = [3.0e-3, 1.0e-8, 3.0e-9]  # the first learns, the others barely move: ASHA prunes them
    space = mini_space(tmp_path, name="asha", seeds=[0], budget={"steps": 12}, n_trials=3,
                       pruner={"name": "asha", "min_resource": 1280, "reduction_factor": 2},
                       axes={"lr_encoder": {"values": lrs}, "lr_decoder": {"values": [1.0e-3]}},
                       base={**MINI_BASE, "train": {**MINI_BASE["train"], "val_every": 3}})
    frame = ddp_sweep(tmp_path, space)  # a rank left training alone would hang the job (and hit the timeout)
    assert (frame.state == "PRUNED").sum() >= 1
    pruned = frame[frame.state == "PRUNED"]
    assert pruned.pruned_at_tokens.notna().all() and (pruned["param.lr_encoder"] < 1e-7).all()
    assert frame.loc[frame.value.idxmin(), "param.lr_encoder"] == 3.0e-3
