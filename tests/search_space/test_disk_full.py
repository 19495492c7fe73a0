"""A lab directory on a full disk: the sweep stops with the cause in one message (the parent says it, since the
workers' logs are on that disk), every checkpoint left behind is whole, and the moved lab resumes to completion."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch

from lclab.testing import MINI_BASE, mini_space

ROOT = Path(__file__).parents[2]


@pytest.fixture
def tiny_disk(tmp_path):
    """A 2 MB filesystem (tmpfs), as a nearly full disk under the lab."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a 2 MB tmpfs needs root (and a container allowed to mount)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.mark.slow
def test_a_full_disk_under_the_lab_is_named_checkpoints_stay_whole_and_the_moved_lab_completes(tmp_path, tiny_disk):
    base = {**MINI_BASE, "train": {**MINI_BASE["train"], "checkpoint_every": 10}}
    db = tmp_path / "lab.db"  # the database lives elsewhere (as a PostgreSQL server would)
    path = mini_space(tmp_path, storage=str(db), seeds=[0], budget={"steps": 60}, base=base)
    cmd = [sys.executable, "-m", "lclab", "sweep", str(path), "--workers", "2"]
    out = subprocess.run([*cmd, "--lab", str(tiny_disk / "lab")], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "COLUMNS": "250"})
    said = " ".join(out.stderr.split())
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert "No space left on device" in said and "is full" in said and "--lab" in said, said
    for ckpt in (tiny_disk / "lab").rglob("*.ckpt"):  # whole or absent, never cut short
        assert torch.load(ckpt, weights_only=True, map_location="cpu")["global_step"] > 0, ckpt
    trials = optuna.load_study(study_name="mini", storage=f"sqlite:///{db}").trials
    assert any("No space left on device" in t.user_attrs.get("fail_reason", "") for t in trials)
    moved = tmp_path / "roomy"
    shutil.copytree(tiny_disk / "lab", moved)
    again = subprocess.run([*cmd, "--lab", str(moved)], capture_output=True, text=True, cwd=ROOT)
    assert again.returncode == 0, again.stderr
    done = [t for t in optuna.load_study(study_name="mini", storage=f"sqlite:///{db}").trials if t.state.name == "COMPLETE"]
    assert sorted((t.params["ratio"], t.params["pooling"]) for t in done) == [(4, "attention"), (4, "mean"), (8, "attention"), (8, "mean")]
